"""Calibration: a small model from a table's per-op sums to measured end-to-end latency.

A table sum misses the whole network's latency in ways a constant factor does not fix (per-network
overhead, caches warmed by the previous layer, op types the runtime schedules differently inside a
graph, a device that runs some layer kinds slower than the one that built the table).
``prune-lut calibrate`` measures sampled networks on the device as it runs now, compares the
candidates below by cross-validation, fits the winner on every sample, and reports the winner's
out-of-fold (held-out) error.

Every candidate is linear in named features (so it is stored as plain JSON numbers, never pickled):

- ``none``      ms = sum                                  (the raw table sum, the baseline)
- ``scale``     ms = a * sum
- ``linear``    ms = a * sum + b                          (b: per-network overhead)
- ``sum_macs``  ms = a * sum + c * GMACs + b               (compute the table's in-context entries mis-weight)
- ``per_op``    ms = sum_g c_g * sum_g + b                 (one factor per op group; ridge towards ``linear``)
- ``regressor`` ``per_op`` plus GMACs and pairwise products of the group sums (ridge towards ``per_op``)

All fits minimise *relative* squared error (the figures users read are percentages). Selection:
the simplest candidate whose cross-validated mean abs % error is within ``TOLERANCE_PCT`` of the best,
because a more complex model that wins by less than the measurement noise wins by luck.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from .report import error_figures

log = logging.getLogger(__name__)

CANDIDATES = ("none", "scale", "linear", "sum_macs", "per_op", "regressor")  # simplest first
SIMPLE = ("none", "scale", "linear")  # at most two coefficients
MIN_RICH = 10  # samples below which only SIMPLE candidates are compared
TOLERANCE_PCT = 0.25
ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
INTERVAL = (0.05, 0.95)  # the quantiles of relative residuals a prediction interval spans


def features_from_groups(groups: dict[str, float], macs: int) -> dict[str, float]:
    """The feature dict calibrations read: ``sum``, ``g_<group>`` (ms) and ``gmacs``."""
    f = {f"g_{g}": v for g, v in groups.items()}
    f["sum"] = sum(groups.values())
    f["gmacs"] = macs / 1e9
    return f


def _value(feats: dict[str, float], name: str) -> float:
    if name == "1":
        return 1.0
    if "*" in name:
        a, b = name.split("*")
        return feats.get(a, 0.0) * feats.get(b, 0.0)
    return feats.get(name, 0.0)


@dataclass
class Calibration:
    """A fitted calibration: ``ms = sum_f coef[f] * feature_f`` plus its prediction interval.

    ``interval`` holds the (5%, 95%) quantiles of relative residuals ``measured / predicted - 1``
    on samples the model was not fitted on; ``meta`` keeps the fit's figures for reports.
    """

    model: str
    coef: dict[str, float]
    interval: tuple[float, float] = (0.0, 0.0)
    meta: dict = field(default_factory=dict)

    def predict(self, feats: dict[str, float]) -> float:
        return sum(c * _value(feats, f) for f, c in self.coef.items())

    def to_dict(self) -> dict:
        return {"model": self.model, "coef": dict(self.coef), "interval": list(self.interval), "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        return cls(model=d["model"], coef={k: float(v) for k, v in d["coef"].items()},
                   interval=tuple(float(q) for q in d.get("interval", (0.0, 0.0))), meta=d.get("meta", {}))


# ---- fitting ---------------------------------------------------------------------------------
def _ridge_rel(X: np.ndarray, y: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """Minimise sum(((y - X b) / y)^2) + alpha * n * sum(s_j^2 (b_j - prior_j)^2), s_j the column scale."""
    Xw = X / y[:, None]
    yw = np.ones_like(y)
    A = Xw.T @ Xw
    rhs = Xw.T @ yw
    if alpha > 0:
        d = alpha * len(y) * np.diag(np.mean(Xw ** 2, axis=0) + 1e-12)
        A = A + d
        rhs = rhs + d @ prior
    return np.linalg.lstsq(A, rhs, rcond=None)[0]


def _design(feats: list[dict[str, float]], names: list[str]) -> np.ndarray:
    return np.array([[_value(f, n) for n in names] for f in feats], dtype=float)


def _groups(feats: list[dict[str, float]]) -> list[str]:
    """Group features present (non-zero somewhere) in the samples."""
    names = sorted({k for f in feats for k in f if k.startswith("g_")})
    return [n for n in names if any(f.get(n, 0.0) > 0 for f in feats)]


def _kfold(n: int, k: int, seed: int) -> list[np.ndarray]:
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    return [np.array(sorted(idx[i::k])) for i in range(min(k, n))]


def _fit_model(name: str, feats: list[dict[str, float]], y: np.ndarray, seed: int = 0) -> Calibration:
    """Fit one candidate on (features, measured ms)."""
    if name == "none":
        return Calibration("none", {"sum": 1.0})
    s = np.array([f["sum"] for f in feats])
    if name == "scale":
        a = _ridge_rel(s[:, None], y, np.zeros(1), 0.0)[0]
        return Calibration("scale", {"sum": float(a)})
    lin = _ridge_rel(np.c_[s, np.ones_like(s)], y, np.zeros(2), 0.0)
    if name == "linear":
        return Calibration("linear", {"sum": float(lin[0]), "1": float(lin[1])})
    if name == "sum_macs":
        b = _ridge_rel(_design(feats, ["sum", "gmacs", "1"]), y, np.zeros(3), 0.0)
        return Calibration("sum_macs", dict(zip(("sum", "gmacs", "1"), map(float, b))))
    groups = _groups(feats)
    if name == "per_op":
        names = groups + ["1"]
        prior = np.array([lin[0]] * len(groups) + [lin[1]])
    elif name == "regressor":
        base = _fit_model("per_op", feats, y, seed)
        pairs = [f"{a}*{b}" for i, a in enumerate(groups) for b in groups[i:]]
        names = groups + ["gmacs"] + pairs + ["1"]
        prior = np.array([base.coef.get(n, 0.0) for n in names])
    else:
        raise ValueError(f"unknown calibration model {name!r}; one of {CANDIDATES}")
    X = _design(feats, names)
    alpha = _choose_alpha(X, y, prior, seed)
    b = _ridge_rel(X, y, prior, alpha)
    return Calibration(name, {n: float(v) for n, v in zip(names, b)}, meta={"alpha": alpha})


def _choose_alpha(X: np.ndarray, y: np.ndarray, prior: np.ndarray, seed: int) -> float:
    """Ridge strength by inner 5-fold cross-validation on relative squared error."""
    folds = _kfold(len(y), 5, seed + 1)
    best = (math.inf, ALPHAS[-1])
    for alpha in ALPHAS:
        err = 0.0
        for te in folds:
            tr = np.setdiff1d(np.arange(len(y)), te)
            b = _ridge_rel(X[tr], y[tr], prior, alpha)
            err += float(np.sum(((X[te] @ b) / y[te] - 1) ** 2))
        best = min(best, (err, alpha))
    return best[1]


def cross_validate(name: str, feats: list[dict[str, float]], y: np.ndarray, k: int = 5,
                   seed: int = 0) -> np.ndarray:
    """Out-of-fold predictions of candidate ``name`` (each sample predicted by a model not fitted on it)."""
    out = np.empty_like(y)
    for te in _kfold(len(y), k, seed):
        tr = np.setdiff1d(np.arange(len(y)), te)
        m = _fit_model(name, [feats[i] for i in tr], y[tr], seed)
        out[te] = [m.predict(feats[i]) for i in te]
    return out


def select_and_fit(feats: list[dict[str, float]], measured: list[float], seed: int = 0,
                   candidates: tuple[str, ...] = CANDIDATES) -> tuple[Calibration, dict[str, np.ndarray]]:
    """Compare candidates by k-fold cross-validation (k = min(5, n)) on these samples; fit the winner
    on all of them.

    Returns the calibration (its interval from the winner's out-of-fold residuals; ``meta`` holds every
    candidate's out-of-fold figures) and the out-of-fold predictions of every candidate. Below
    ``MIN_RICH`` samples only the candidates with at most two coefficients are compared: a model
    with more coefficients than folds can check is chosen by luck.
    """
    y = np.asarray(measured, dtype=float)
    if len(y) < 3:
        raise UserError(f"a calibration needs at least 3 measured archs, got {len(y)}; measure more (--samples)")
    names = [c for c in candidates if len(y) >= MIN_RICH or c in SIMPLE]
    k = min(5, len(y))
    oof: dict[str, np.ndarray] = {}
    for name in names:
        try:
            oof[name] = cross_validate(name, feats, y, k=k, seed=seed)
        except np.linalg.LinAlgError as e:  # too few samples for this model's features
            log.info("candidate %s failed: %s", name, e)
    cv = {name: error_figures(pred, y) for name, pred in oof.items()}
    best = min(v["mean_abs_pct"] for v in cv.values())
    winner = next(n for n in names if n in cv and cv[n]["mean_abs_pct"] <= best + TOLERANCE_PCT)
    cal = _fit_model(winner, feats, y, seed)
    cal.interval = residual_interval(oof[winner], y)
    cal.meta.update({"n_fit": int(len(y)), "folds": k, "cv": cv, "selected_by": f"simplest within {TOLERANCE_PCT} "
                     f"points of the best {k}-fold CV mean abs % error; fitted on all {len(y)} archs"})
    return cal, oof


def residual_interval(predicted, measured) -> tuple[float, float]:
    """(5%, 95%) quantiles of measured / predicted - 1."""
    r = np.asarray(measured, float) / np.asarray(predicted, float) - 1
    return float(np.quantile(r, INTERVAL[0])), float(np.quantile(r, INTERVAL[1]))
