"""Entries shrunk toward the regressor, so a search has less of the table's noise to pick.

A key's time differs from one network to the next (its neighbours, the caches they leave): on the
14x14 cpu table of 2026-12-02 the observations of one key spread by 20% (sd of log), and an entry is
the median of only 1-5 of them. A search that keeps, among thousands of archs, those predicted
cheapest for their capacity keeps archs whose entries erred low (docs/BENCHMARKS.md, "Does the search
pick archs the table under-predicts?").

Empirical Bayes, per op group ``g`` (conv, pwconv, dwconv, ...), in log time:
  * the noise of one observation, ``sigma_g^2``: pooled within-key variance over keys seen several times;
  * an entry's noise, ``v = sigma_g^2 * MEDIAN_VAR[n]`` (the variance of a median of ``n`` observations);
  * the prior: the regressor's prediction for the key, fitted out of fold (it never saw the entry);
  * the prior's spread, ``tau_g^2``: the entries' mean squared distance from it, less their mean noise;
  * the entry: ``log ms = prior + w * (log median - prior)``, ``w = tau_g^2 / (tau_g^2 + v)``.
The raw median stays in ``raw_median_ms``; ``sum_to_e2e`` is refitted on the new sums.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from .build import fit_sum_to_e2e
from .lutfile import LUT
from .predictor import op_group
from .regress import FLOOR_MS, out_of_fold
from .spec import LayerSpec

# variance of the median of n normal draws, in units of one draw's variance
MEDIAN_VAR = {1: 1.0, 2: 0.5, 3: 0.449, 4: 0.361, 5: 0.287}
MIN_TAU2 = 1e-4  # the prior is never trusted beyond a 1% spread
MIN_OBS = 2 * FLOOR_MS  # observations at the floor are fused-away operators: 0 ms, not noise


def _kept_obs(e: dict, limit: float | None) -> list[float]:
    """The observations an entry's median was taken over (``build._settle``: the quiet ones, else all)."""
    refs = e.get("refs") or [0.0] * len(e["obs"])
    keep = [o for o, r in zip(e["obs"], refs) if limit is None or r <= limit]
    return keep or list(e["obs"])


def shrink(lut: LUT, folds: int = 5, seed: int = 0) -> dict:
    """Shrink ``lut``'s measured entries in place (module docstring); return the figures per group."""
    if lut.calibration:
        raise UserError("the table is calibrated on its raw entries; shrink the uncalibrated table (its build), "
                        "then run `prune-lut calibrate` on the result")
    if "shrinkage" in lut.extra:
        raise UserError("the table's entries are shrunk already; shrink its build, not its shrunk copy")
    limit = (lut.extra.get("build") or {}).get("quiet_limit_ms")
    obs = {k: _kept_obs(e, limit) for k, e in lut.entries.items()
           if e["source"] == "measured" and e.get("obs") and e["median_ms"] >= MIN_OBS}
    if len(obs) < 10 * folds:
        raise UserError(f"only {len(obs)} measured entries with observations: too few to shrink")
    prior = out_of_fold({k: lut.entries[k]["median_ms"] for k in obs}, folds, seed)
    group = {k: op_group(LayerSpec.from_key(k)) for k in obs}
    figures = {}
    for g in sorted(set(group.values())):
        keys = [k for k in obs if group[k] == g]
        within = [(len(o) - 1, np.var(np.log(o), ddof=1)) for k in keys
                  if len(o := [x for x in obs[k] if x >= MIN_OBS]) >= 2]
        dof = sum(d for d, _ in within)
        if not dof:
            continue  # no key seen twice: nothing says how noisy the group is
        sigma2 = sum(d * v for d, v in within) / dof
        noise = {k: sigma2 * MEDIAN_VAR[min(len(obs[k]), max(MEDIAN_VAR))] for k in keys}
        dev = {k: math.log(lut.entries[k]["median_ms"]) - math.log(prior[k]) for k in keys}
        tau2 = max(MIN_TAU2, float(np.mean([d * d for d in dev.values()])) - float(np.mean(list(noise.values()))))
        weights = []
        for k in keys:
            e, w = lut.entries[k], tau2 / (tau2 + noise[k])
            e["raw_median_ms"] = e["median_ms"]
            e["median_ms"] = float(prior[k] * math.exp(w * dev[k]))
            e["shrink_weight"] = round(w, 4)
            weights.append(w)
        figures[g] = {"keys": len(keys), "sigma_log": math.sqrt(sigma2), "tau_log": math.sqrt(tau2),
                      "mean_weight": float(np.mean(weights)), "min_weight": float(np.min(weights))}
    held = {n["id"] for n in lut.extra.get("networks", []) if n.get("heldout")}
    lut.extra["sum_to_e2e"] = fit_sum_to_e2e(lut, held)
    lut.extra["shrinkage"] = {"folds": folds, "seed": seed, "groups": figures,
                              "prior": "out-of-fold regressor (latency/regress.py)"}
    return figures
