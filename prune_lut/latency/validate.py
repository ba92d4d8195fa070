"""Validation and calibration of a lookup table: measure whole networks end to end, compare with the table.

Family-agnostic: it takes networks as ONNX bytes (made on demand), their layer specs and MACs.
Every measurement goes through the worker's protocol (``worker.measure_models``, or a remote
worker with the same signature), each network interleaved with the table's reference network in
the same call. Measurements stay in the milliseconds of the device as it runs now: with
``drift="local"`` each call is scaled by the run's median reference over its neighbours', which
takes a slow minute out of the run without moving it into another frame (``latency/frame.py``);
the default ``none`` keeps raw times (local scaling also carries the reference's own call-to-call
noise into every net). A share of the networks is measured a second time at the end, in fresh
sessions, which gives the noise floor: how often two honest measurements of one network agree
within +-5% / +-10%.

``validate_networks`` compares the table's predictions (in its frame) with the measurements;
``calibrate_networks`` also selects and fits a calibration on them (``calibration.select_and_fit``)
and gives it the frame of this device now. The result is a *record* (JSON, schema
``prune-lut.validation/2``) holding every sample (its identity, per-op-group table sums, predictions,
raw and scaled measurements) and the calibration if any; :func:`compute_report` derives every figure
from the record alone, so a report can be recomputed (and checked) without measuring again.
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

from . import frame as F
from .calibration import CANDIDATES, Calibration, cross_validate, select_and_fit
from .lutfile import LUT
from .predictor import Predictor
from .report import error_figures, noise_floor, proxy_figures, worst_cases
from .spec import LayerSpec

log = logging.getLogger(__name__)

SCHEMA = "prune-lut.validation/2"
SMOOTH = 2                   # reference smoothing: median over this many calls either side
RETRY_TOL = 0.10             # a call whose reference ran this much over the run's median is measured again
SPREAD_TOL = 0.25            # ... or whose runs spread (IQR / median) more than this (and 3x the run's median)
RETRIES = 2
SAMPLE_FIELDS = ("t", "attempts", "raw_ms", "spread_ms", "reps", "ref_ms", "ref_used_ms", "measured_ms")
DRIFT_MODES = ("none", "local")


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

    quiet = None if progress else True  # None: tqdm shows no bar where stderr is no terminal (a log file)
    done = [call(i) for i, _ in tqdm(calls, desc="validate", unit="net", disable=quiet)]
    for _ in range(RETRIES):
        calm = float(np.median([r["ref_ms"] for r in done]))
        spread_tol = max(SPREAD_TOL, 3 * float(np.median([r["spread_ms"] / r["raw_ms"] for r in done])))

        def disturbance(r: dict) -> float:  # > 1: the call was disturbed
            return max((r["ref_ms"] / calm - 1) / RETRY_TOL, r["spread_ms"] / r["raw_ms"] / spread_tol)

        bad = [j for j, r in enumerate(done) if disturbance(r) > 1]
        if not bad:
            break
        log.info("%d calls ran while the machine was disturbed: measuring them again", len(bad))
        for j in tqdm(bad, desc="re-measure disturbed", unit="net", disable=quiet):
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


def _correct(rows: list[dict], reps: list[dict], mode: str = "none") -> None:
    """Add ``ref_used_ms`` and ``measured_ms`` to every row: raw (``none``), or (``local``) scaled by
    the run's median reference over the median of the calls within ``SMOOTH`` either side."""
    if mode not in DRIFT_MODES:
        raise ValueError(f"drift mode must be one of {DRIFT_MODES}")
    calls = sorted(rows + reps, key=lambda r: r["t"])
    refs = [r["ref_ms"] for r in calls]
    run = float(np.median(refs))
    for j, r in enumerate(calls):
        r["ref_used_ms"] = _smoothed(refs, j) if mode == "local" else run
        r["measured_ms"] = r["raw_ms"] * run / r["ref_used_ms"] if mode == "local" else r["raw_ms"]


# ---- the whole run ---------------------------------------------------------------------------
def validate_networks(lut: LUT, nets: list[Net], reference: bytes, meter=None, *, repeat_share: float = 0.2,
                      seed: int = 0, drift: str = "none", progress: bool = True) -> dict:
    """Measure ``nets`` and compare them with the table's predictions; return the record.

    ``meter`` (see ``latency.measure``) defaults to the LUT's device profile on this host. Raises
    UserError before measuring anything when a net needs a key the table lacks. The record's
    warnings say when this is another device than the table's frame, or the reference has drifted.
    """
    t0 = time.perf_counter()
    pred = Predictor(lut)
    feats = [pred.features(n.specs) for n in nets]  # raises on a missing key before any measurement
    lut_pred = [pred.predict(n.specs) for n in nets]
    meter = meter or meter_for(lut)
    here = meter.info()
    rows, reps = measure_nets(nets, reference, meter, repeat_share, seed, progress)
    _correct(rows, reps, drift)
    samples = [{"id": n.id, **n.info, "macs": n.macs, "params": n.params, "features": f, "table_sum_ms": f["sum"],
                "lut_predicted_ms": p.ms, "lut_low_ms": p.low, "lut_high_ms": p.high,
                **{k: r[k] for k in SAMPLE_FIELDS}} for n, f, p, r in zip(nets, feats, lut_pred, rows)]
    frame = F.frame_of(lut)
    now = [r["ref_ms"] for r in sorted(rows + reps, key=lambda r: r["t"])]
    record = {"schema": SCHEMA, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "device": lut.device, "lut_space": lut.space, "lut_calibrated": pred.calibrated,
              "lut_calibration": pred.calibration.to_dict() if pred.calibration else None,
              "lut_calibration_source": pred.calibration_source, "frame": frame, "host": here, "seed": seed,
              "drift": drift, "reference": {"frame_ms": frame.get("reference_ms"), "now_ms": now},
              "samples": samples, "repeats": [{k: r[k] for k in ("index",) + SAMPLE_FIELDS} for r in reps],
              "warnings": F.warnings(frame, here, float(np.median(now)), (lut.device or {}).get("backend", "onnxruntime")),
              "calibration": None}
    record["seconds"] = time.perf_counter() - t0
    record["report"] = compute_report(record)
    return record


def calibrate_networks(lut: LUT, nets: list[Net], reference: bytes, meter=None, *, repeat_share: float = 0.2,
                       seed: int = 0, drift: str = "none", progress: bool = True) -> dict:
    """Measure ``nets`` as :func:`validate_networks` does, then select and fit a calibration on all of
    them (cross-validated: its held-out figures are out-of-fold) in the frame of this device now.
    The record's ``calibration`` is the new one (store it with :func:`apply_calibration`)."""
    record = validate_networks(lut, nets, reference, meter, repeat_share=repeat_share, seed=seed, drift=drift,
                               progress=progress)
    t0 = time.perf_counter()
    S = record["samples"]
    cal, _ = select_and_fit([s["features"] for s in S], [s["measured_ms"] for s in S], seed=seed)
    record["calibration"] = cal.to_dict()
    record["report"] = compute_report(record)
    frame = F.new_frame(lut.device or {}, record["host"], record["date"], float(np.median(record["reference"]["now_ms"])),
                        len(S), record["report"]["headline"])
    record["calibration"]["meta"].update({"frame": frame, "drift": drift})
    # the warnings were about the old frame, which this calibration replaces: kept as the reason, not as a warning
    record["previous_frame"], record["frame"] = record["frame"], frame
    record["previous_warnings"], record["warnings"] = record["warnings"], []
    record["seconds"] += time.perf_counter() - t0
    return record


def compute_report(record: dict) -> dict:
    """Every figure of a validation or calibration, from the record's samples alone (module docstring)."""
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
    rep["reference"] = {"frame_ms": record["reference"].get("frame_ms"), "median_now_ms": float(np.median(refs)),
                        "min_now_ms": float(min(refs)), "max_now_ms": float(max(refs)),
                        "remeasured": sum(r.get("attempts", 1) > 1 for r in S + record.get("repeats", []))}
    ids = [s["id"] for s in S]
    rep["headline_macs"] = rep["macs"]
    if record.get("calibration"):
        cal = Calibration.from_dict(record["calibration"])
        oof = out_of_fold(record)
        k = min(5, len(S))
        rep["fit"] = {"model": cal.model, "n": len(S), "folds": k,
                      "candidates": {name: error_figures(p, meas) for name, p in oof.items()}}
        rep["headline_name"] = f"calibrated ({cal.model}), out of fold ({k}-fold CV over {len(S)} archs)"
        rep["headline"] = rep["fit"]["candidates"][cal.model]
        rep["worst"] = worst_cases(ids, list(oof[cal.model]), meas)
    elif record.get("lut_calibrated"):
        rep["headline_name"] = "the table's calibrated prediction"
        rep["headline"] = rep["lut_prediction"]
        rep["worst"] = worst_cases(ids, [s["lut_predicted_ms"] for s in S], meas)
    else:
        rep["headline_name"] = "table sum (no calibration)"
        rep["headline"] = rep["table_sum"]
        rep["worst"] = worst_cases(ids, table, meas)
    return rep


def out_of_fold(record: dict) -> dict[str, np.ndarray]:
    """Each candidate's out-of-fold predictions of the record's samples (as the calibration chose)."""
    S = record["samples"]
    feats, y = [s["features"] for s in S], np.array([s["measured_ms"] for s in S])
    model = record["calibration"]["model"]
    names = [c for c in CANDIDATES if c in (record["calibration"].get("meta", {}).get("cv") or {}) or c == model]
    return {name: cross_validate(name, feats, y, k=min(5, len(S)), seed=record.get("seed", 0)) for name in names}


def headline_predictions(record: dict) -> tuple[list[float], list[float], list[float]]:
    """(predicted, measured, MACs) of every sample, as the headline figure predicts them (out of fold
    for a calibration)."""
    S = record["samples"]
    meas = [s["measured_ms"] for s in S]
    macs = [s["macs"] for s in S]
    if record.get("calibration"):
        return list(out_of_fold(record)[record["calibration"]["model"]]), meas, macs
    key = "lut_predicted_ms" if record.get("lut_calibrated") else "table_sum_ms"
    return [s[key] for s in S], meas, macs


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
