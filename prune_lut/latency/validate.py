"""Validation of a lookup table: measure whole networks, compare with the table's prediction.

Family-agnostic: it takes networks as ONNX bytes (made on demand), their layer specs and MACs.
Every measurement goes through the worker's protocol (``worker.measure_models``, or a remote
worker with the same signature), each network interleaved with the table's reference network in
the same call, so machine drift hits both alike: a network's latency is reported as
``raw * reference_at_build / reference_now``. By default ``reference_now`` is the median of all
the run's reference measurements (``global``): it cancels the shift between the build and now,
while a per-call ratio (``local``) also carried the reference's own call-to-call noise into every
net and made held-out errors worse on this loaded 2-core VM (see docs/BENCHMARKS.md).
A share of the networks is measured a second time at the end, in fresh sessions, which gives the
noise floor: how often two honest measurements of one network agree within +-5% / +-10%.

The result is a *record* (JSON, schema ``prune-lut.validation/1``) holding every sample (its
identity, per-op-group table sums, predictions, raw and corrected measurements), the fitted
calibration if any and the split; :func:`compute_report` derives every figure from the record
alone, so a report can be recomputed (and checked) without measuring again.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import numpy as np
from tqdm import tqdm

from .calibration import CANDIDATES, Calibration, _fit_model, select_and_fit, split_fit_holdout
from .lutfile import LUT
from .predictor import Predictor
from .report import error_figures, noise_floor, proxy_figures, worst_cases
from .spec import LayerSpec

log = logging.getLogger(__name__)

SCHEMA = "prune-lut.validation/1"
REFERENCE_TOLERANCE = 0.10   # warn when the reference runs this much off the LUT's record
SMOOTH = 2                   # reference smoothing: median over this many calls either side
RETRY_TOL = 0.10             # a call whose reference ran this much over the run's median is measured again
SPREAD_TOL = 0.25            # ... or whose runs spread (IQR / median) more than this (and 3x the run's median)
RETRIES = 2
SAMPLE_FIELDS = ("t", "attempts", "raw_ms", "spread_ms", "reps", "ref_ms", "ref_used_ms", "measured_ms")


@dataclass
class Net:
    """A network to validate: its specs (for the table), MACs (for the proxy), ONNX bytes on demand."""

    id: str
    specs: list[LayerSpec]
    onnx: Callable[[], bytes]
    macs: int
    params: int = 0
    info: dict = field(default_factory=dict)  # stored as-is in the record (arch vector, how it was drawn, ...)


def meter_for(lut: LUT, host: str | None = None):
    """The meter (``latency.measure``) for the LUT's device profile: local, or over SSH with ``host``."""
    from ..devices import Device
    from .measure import get_meter

    return get_meter(Device.from_dict(lut.device), host)


# ---- provenance checks -----------------------------------------------------------------------
PROVENANCE_FIELDS = {"cpu": "CPU", "gpu": "GPU", "machine": "architecture", "cores": "core count",
                     "onnxruntime": "ONNX Runtime", "torch": "PyTorch", "tensorrt": "TensorRT", "cuda": "CUDA"}
BACKEND_RUNTIME = {"onnxruntime": ("onnxruntime",), "torch": ("torch", "cuda"), "tensorrt": ("tensorrt", "cuda")}


def provenance_warnings(lut: LUT, here: dict) -> list[str]:
    """Lines naming each way this host (``worker.host_info()``) differs from where the table was measured."""
    prov = lut.provenance or {}
    backend = (lut.device or {}).get("backend", "onnxruntime")
    check = ["cpu", "machine", "cores"] + list(BACKEND_RUNTIME.get(backend, ()))
    if backend != "onnxruntime":
        check.append("gpu")
    out = []
    for k in check:
        a, b = prov.get(k), here.get(k)
        if a is not None and b is not None and str(a) != str(b):
            out.append(f"{PROVENANCE_FIELDS.get(k, k)} differs: table measured with {a}, this host has {b}")
    return out


def reference_ms(lut: LUT) -> float | None:
    """The reference network's latency while the table was built: the median of every reference
    measurement the build took beside its networks (``extra.networks[].ref_ms``), else the
    reference's own record (mean of its first and last measurement)."""
    refs = [n["ref_ms"] for n in (lut.extra or {}).get("networks", []) if n.get("ref_ms")]
    if refs:
        return float(np.median(refs))
    ref = lut.reference or {}
    vals = [ref[k] for k in ("first_ms", "last_ms") if ref.get(k)] or ([ref["median_ms"]] if ref.get("median_ms") else [])
    return float(np.mean(vals)) if vals else None


def anchor_ms(lut: LUT) -> float | None:
    """The reference network's latency in the time frame the table's predictions are in: the
    validation run's median reference when its calibration was fitted on unscaled times
    (``--drift none``: anchored to the device as it ran then), else the build's (:func:`reference_ms`).
    A reference measured now against this gives the device's drift since."""
    meta = (lut.calibration or {}).get("meta") or {}
    if meta.get("drift") == "none" and meta.get("reference_now_ms"):
        return float(meta["reference_now_ms"])
    return reference_ms(lut)


def reference_drift(lut: LUT, measured_ms: float) -> dict:
    """The reference measured now against the table's anchor (:func:`anchor_ms`)."""
    anchor = anchor_ms(lut)
    return {"anchor_ms": anchor, "measured_ms": measured_ms,
            "drift_pct": 100 * (measured_ms / anchor - 1) if anchor else None}


# ---- measuring -------------------------------------------------------------------------------
def _smoothed(values: list[float], i: int) -> float:
    lo, hi = max(0, i - SMOOTH), min(len(values), i + SMOOTH + 1)
    return float(np.median(values[lo:hi]))


def measure_nets(nets: list[Net], reference: bytes, meter, repeat_share: float = 0.2,
                 seed: int = 0, progress: bool = True) -> tuple[list[dict], list[dict]]:
    """Measure each net interleaved with the reference (in random order), then re-measure a share.

    The reference of each call is a witness: a call whose reference ran more than ``RETRY_TOL``
    above the run's median reference, or whose net's runs spread (IQR / median) more than
    ``SPREAD_TOL`` and 3x the run's median spread, was disturbed (another job took the core) and
    is measured again, up to ``RETRIES`` times, keeping the calmest attempt. Returns (one
    row per net, one row per repeat); rows hold raw medians, the reference's median of the same
    call, the call order ``t`` and ``attempts``.
    """
    rng = random.Random(seed)
    order = list(range(len(nets)))
    rng.shuffle(order)  # drift must not line up with latency
    k = 0 if len(nets) < 3 else max(3, round(repeat_share * len(nets)))
    repeats = rng.sample(range(len(nets)), min(k, len(nets)))
    calls = [(i, False) for i in order] + [(i, True) for i in repeats]
    t = 0

    def call(i: int) -> dict:
        nonlocal t
        ref, res = meter.measure_many([reference, nets[i].onnx()])
        t += 1
        return {"t": t - 1, "raw_ms": res["median_ms"], "spread_ms": res["spread_ms"], "reps": res["reps"],
                "ref_ms": ref["median_ms"], "attempts": 1}

    done = [call(i) for i, _ in tqdm(calls, desc="validate", unit="net", disable=not progress)]
    for _ in range(RETRIES):
        calm = float(np.median([r["ref_ms"] for r in done]))
        spread_tol = max(SPREAD_TOL, 3 * float(np.median([r["spread_ms"] / r["raw_ms"] for r in done])))

        def disturbance(r: dict) -> float:  # > 1: the call was disturbed
            return max((r["ref_ms"] / calm - 1) / RETRY_TOL, r["spread_ms"] / r["raw_ms"] / spread_tol)

        bad = [j for j, r in enumerate(done) if disturbance(r) > 1]
        if not bad:
            break
        log.info("%d calls ran while the machine was disturbed: measuring them again", len(bad))
        for j in tqdm(bad, desc="re-measure disturbed", unit="net", disable=not progress):
            new = call(calls[j][0])
            new["attempts"] = done[j]["attempts"] + 1
            if disturbance(new) < disturbance(done[j]):
                done[j] = new
            else:
                done[j]["attempts"] = new["attempts"]
    rows: list[dict | None] = [None] * len(nets)
    reps: list[dict] = []
    for (i, again), row in zip(calls, done):
        if again:
            reps.append({"index": i, **row})
        else:
            rows[i] = row
    return rows, reps  # type: ignore[return-value]


DRIFT_MODES = ("global", "local", "none")


def _correct(rows: list[dict], reps: list[dict], ref_lut: float | None, mode: str = "global") -> None:
    """Add ``ref_used_ms`` and ``measured_ms = raw * LUT reference / ref_used`` to every row.

    ``global``: ref_used is the median of every reference measurement of this run (cancels the
    shift between the build and now, adds no per-call noise); ``local``: the median of the calls
    within ``SMOOTH`` either side (follows drift within the run, but carries the reference's own
    noise into each net); ``none``: raw times.
    """
    if mode not in DRIFT_MODES:
        raise ValueError(f"drift mode must be one of {DRIFT_MODES}")
    calls = sorted(rows + reps, key=lambda r: r["t"])
    refs = [r["ref_ms"] for r in calls]
    for j, r in enumerate(calls):
        r["ref_used_ms"] = float(np.median(refs)) if mode == "global" else _smoothed(refs, j)
        r["measured_ms"] = r["raw_ms"] * ref_lut / r["ref_used_ms"] if ref_lut and mode != "none" else r["raw_ms"]


# ---- the whole run ---------------------------------------------------------------------------
def validate_networks(lut: LUT, nets: list[Net], reference: bytes, meter=None, *, fit: bool = False,
             fit_share: float = 0.5, repeat_share: float = 0.2, seed: int = 0, drift: str = "global",
             progress: bool = True) -> dict:
    """Measure ``nets``, compare with the table (and fit a calibration with ``fit``); return the record.

    ``meter`` (see ``latency.measure``) defaults to the LUT's device profile on this host.

    Raises UserError before measuring anything when a net needs a key the table lacks.
    With ``fit`` the record's ``calibration`` is the new one (store it with :func:`apply_calibration`).
    """
    t0 = time.perf_counter()
    pred = Predictor(lut)
    feats = [pred.features(n.specs) for n in nets]  # raises on a missing key before any measurement
    lut_pred = [pred.predict(n.specs) for n in nets]
    meter = meter or meter_for(lut)
    here = meter.info()
    rows, reps = measure_nets(nets, reference, meter, repeat_share, seed, progress)
    ref_lut = reference_ms(lut)
    _correct(rows, reps, ref_lut, drift)
    samples = []
    for n, f, p, r in zip(nets, feats, lut_pred, rows):
        samples.append({"id": n.id, **n.info, "macs": n.macs, "params": n.params, "features": f,
                        "table_sum_ms": f["sum"], "lut_predicted_ms": p.ms, "lut_low_ms": p.low,
                        "lut_high_ms": p.high, **{k: r[k] for k in SAMPLE_FIELDS}})
    record = {"schema": SCHEMA, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "device": lut.device, "lut_space": lut.space, "lut_calibrated": pred.calibrated,
              "lut_calibration": pred.calibration.to_dict() if pred.calibration else None,
              "lut_calibration_source": pred.calibration_source, "host": here, "seed": seed, "drift": drift,
              "reference": {"lut_ms": ref_lut,
                            "now_ms": [r["ref_ms"] for r in sorted(rows + reps, key=lambda r: r["t"])]},
              "samples": samples, "repeats": [{k: r[k] for k in ("index",) + SAMPLE_FIELDS} for r in reps],
              "warnings": provenance_warnings(lut, here), "calibration": None, "split": None}
    if ref_lut is None:
        record["warnings"].append("the table has no reference measurement: drift between its build and now "
                                  "is not corrected")
    else:
        now = float(np.median(record["reference"]["now_ms"]))
        if abs(now / ref_lut - 1) > REFERENCE_TOLERANCE:
            record["warnings"].append(
                f"the reference network runs in {now:.3f} ms here, {100 * (now / ref_lut - 1):+.0f}% off the "
                f"table's {ref_lut:.3f} ms: another board, other settings, or a busy machine")
    if fit:
        fit_idx, hold_idx = split_fit_holdout([s["table_sum_ms"] for s in samples], fit_share, seed)
        cal, _ = select_and_fit([samples[i]["features"] for i in fit_idx],
                                [samples[i]["measured_ms"] for i in fit_idx], seed=seed)
        cal.meta.update({"date": record["date"], "reference_ms": ref_lut, "drift": drift, "n_heldout": len(hold_idx),
                         "reference_now_ms": float(np.median(record["reference"]["now_ms"]))})
        record["split"] = {"fit": fit_idx, "heldout": hold_idx}
        record["calibration"] = cal.to_dict()
    record["seconds"] = time.perf_counter() - t0
    record["report"] = compute_report(record)
    if fit:  # the stored calibration carries its own held-out figures
        record["calibration"]["meta"]["heldout"] = record["report"]["headline"]
    return record


def compute_report(record: dict) -> dict:
    """Every figure of a validation, from the record's samples alone (see the module docstring)."""
    S = record["samples"]
    meas = [s["measured_ms"] for s in S]
    table = [s["table_sum_ms"] for s in S]
    rep: dict = {"n": len(S), "table_sum": error_figures(table, meas),
                 "macs": proxy_figures([s["macs"] for s in S], meas)}
    if record.get("lut_calibrated"):
        rep["lut_prediction"] = error_figures([s["lut_predicted_ms"] for s in S], meas)
    pairs = [(S[r["index"]]["measured_ms"], r["measured_ms"]) for r in record.get("repeats", [])]
    rep["noise"] = noise_floor(pairs)
    refs = record["reference"]["now_ms"]
    rep["reference"] = {"lut_ms": record["reference"]["lut_ms"], "median_now_ms": float(np.median(refs)),
                        "min_now_ms": float(min(refs)), "max_now_ms": float(max(refs)),
                        "remeasured": sum(r.get("attempts", 1) > 1 for r in S + record.get("repeats", []))}
    ids = [s["id"] for s in S]
    if record.get("calibration"):
        cal = Calibration.from_dict(record["calibration"])
        fit_idx, hold = record["split"]["fit"], record["split"]["heldout"]
        hm = [meas[i] for i in hold]
        calp = [cal.predict(S[i]["features"]) for i in hold]
        cand = {}
        for name in CANDIDATES:  # each candidate fitted on the same fit part, judged on the held-out part
            m = _fit_model(name, [S[i]["features"] for i in fit_idx], np.array([meas[i] for i in fit_idx]),
                           record.get("seed", 0))
            cand[name] = error_figures([m.predict(S[i]["features"]) for i in hold], hm)
        rep["fit"] = {"model": cal.model, "n_fit": len(fit_idx), "n_heldout": len(hold),
                      "cv": cal.meta.get("cv"), "heldout_candidates": cand,
                      "heldout_table_sum": error_figures([table[i] for i in hold], hm)}
        rep["headline_name"] = f"calibrated ({cal.model}), held-out"
        rep["headline"] = error_figures(calp, hm)
        rep["headline_macs"] = proxy_figures([S[i]["macs"] for i in hold], hm)
        rep["worst"] = worst_cases([ids[i] for i in hold], calp, hm)
    elif record.get("lut_calibrated"):
        rep["headline_name"] = "the table's calibrated prediction"
        rep["headline"] = rep["lut_prediction"]
        rep["headline_macs"] = rep["macs"]
        rep["worst"] = worst_cases(ids, [s["lut_predicted_ms"] for s in S], meas)
    else:
        rep["headline_name"] = "table sum (no calibration)"
        rep["headline"] = rep["table_sum"]
        rep["headline_macs"] = rep["macs"]
        rep["worst"] = worst_cases(ids, table, meas)
    return rep


def headline_predictions(record: dict) -> tuple[list[float], list[float], list[float], list[bool]]:
    """(predicted, measured, MACs, held-out flags) of every sample, as the headline figure predicts them."""
    S = record["samples"]
    meas = [s["measured_ms"] for s in S]
    macs = [s["macs"] for s in S]
    if record.get("calibration"):
        cal = Calibration.from_dict(record["calibration"])
        held = set(record["split"]["heldout"])
        return [cal.predict(s["features"]) for s in S], meas, macs, [i in held for i in range(len(S))]
    key = "lut_predicted_ms" if record.get("lut_calibrated") else "table_sum_ms"
    return [s[key] for s in S], meas, macs, [True] * len(S)


def apply_calibration(lut: LUT, record: dict) -> LUT:
    """Put the record's fitted calibration into ``lut`` (the caller saves it, atomically)."""
    if not record.get("calibration"):
        raise ValueError("the record has no fitted calibration")
    lut.calibration = record["calibration"]
    return lut


def exceeds(record: dict, max_error_pct: float) -> bool:
    """Whether the headline mean absolute % error is above ``max_error_pct``."""
    e = record["report"]["headline"].get("mean_abs_pct")
    return e is None or e > max_error_pct or math.isnan(e)
