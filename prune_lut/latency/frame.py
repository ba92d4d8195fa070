"""A table's frame: the device, as it ran at one time, whose milliseconds its predictions are in.

A table predicts in the milliseconds of the device it was last calibrated on (``prune-lut
calibrate``), as that device ran then; a table never calibrated predicts in its build's. The
frame says where and when that was: the host and its hardware, the runtime versions, the date,
the reference network's latency then (the space's full net, measured beside every calibration and
build run), and for a calibration how many runs it was fitted on and its held-out error. Every
consumer (``predict``, search budgets, ``search --verify``, ``validate``, the quickstart) predicts
in that frame, and a measurement on another device, or on the same device drifted since, is
pointed out in one line.
"""
from __future__ import annotations

import numpy as np

from .lutfile import LUT

HARDWARE = ("host", "cpu", "gpu", "machine", "cores")
RUNTIMES = ("onnxruntime", "torch", "tensorrt", "cuda")
BACKEND_RUNTIME = {"onnxruntime": ("onnxruntime",), "torch": ("torch", "cuda"), "tensorrt": ("tensorrt", "cuda")}
NAMES = {"host": "host", "cpu": "CPU", "gpu": "GPU", "machine": "architecture", "cores": "core count",
         "onnxruntime": "ONNX Runtime", "torch": "PyTorch", "tensorrt": "TensorRT", "cuda": "CUDA"}
DRIFT_TOLERANCE = 0.10  # a reference this far off the frame's: the device runs differently than the table says


def build_reference_ms(lut: LUT) -> float | None:
    """The reference network's latency while the table was built: the median of every reference
    measurement the build took beside its networks (``extra.networks[].ref_ms``), else the
    reference's own record (mean of its first and last measurement)."""
    refs = [n["ref_ms"] for n in (lut.extra or {}).get("networks", []) if n.get("ref_ms")]
    if refs:
        return float(np.median(refs))
    ref = lut.reference or {}
    vals = [ref[k] for k in ("first_ms", "last_ms") if ref.get(k)] or ([ref["median_ms"]] if ref.get("median_ms") else [])
    return float(np.mean(vals)) if vals else None


def new_frame(device: dict, here: dict, date: str, reference_ms: float, runs: int, heldout: dict) -> dict:
    """The frame of a calibration fitted now, on the host ``here`` (``worker.host_info()``)."""
    return {"source": "calibrate", "device": device.get("name"), **{k: here.get(k) for k in HARDWARE + RUNTIMES},
            "ssh_host": here.get("ssh_host"), "date": date, "reference_ms": reference_ms, "runs": runs,
            "heldout": heldout}


def frame_of(lut: LUT) -> dict:
    """The frame the table's predictions are in (module docstring)."""
    cal = lut.calibration or {}
    meta = cal.get("meta") or {}
    if isinstance(meta.get("frame"), dict):
        return meta["frame"]
    prov = lut.provenance or {}
    frame = {"source": "build", "device": (lut.device or {}).get("name"),
             **{k: prov.get(k) for k in HARDWARE + RUNTIMES}, "ssh_host": prov.get("ssh_host"),
             "date": prov.get("date"), "reference_ms": build_reference_ms(lut)}
    if cal and meta.get("drift") == "none" and meta.get("reference_now_ms"):
        # a calibration of prune-lut 0.1's `validate --fit --drift none`: fitted on the device as it ran then
        frame.update(source="calibrate", date=meta.get("date"), reference_ms=float(meta["reference_now_ms"]),
                     runs=meta.get("n_fit"), heldout=meta.get("heldout"))
    return frame


def differences(frame: dict, here: dict, backend: str = "onnxruntime") -> list[str]:
    """How the host ``here`` differs from the frame's device (hardware and the backend's runtimes)."""
    keys = ["cpu", "machine", "cores"] + (["gpu"] if backend != "onnxruntime" else []) + list(
        BACKEND_RUNTIME.get(backend, ()))
    return [f"{NAMES[k]} {frame[k]} vs {here[k]}" for k in keys
            if frame.get(k) is not None and here.get(k) is not None and str(frame[k]) != str(here[k])]


def drift(frame: dict, measured_ms: float | None) -> dict:
    """The reference network measured now against the frame's: the device's drift since."""
    ref = frame.get("reference_ms")
    return {"frame_ms": ref, "measured_ms": measured_ms,
            "drift_pct": 100 * (measured_ms / ref - 1) if ref and measured_ms else None}


def where(frame: dict) -> str:
    """``cpu on vm (AMD EPYC), calibrated 2026-12-01T10:00 from 30 runs`` (or ``built ...``)."""
    host = frame.get("ssh_host") or frame.get("host")
    hw = frame.get("gpu") if frame.get("gpu") and frame.get("device") not in (None, "cpu") else frame.get("cpu")
    when = str(frame.get("date") or "?")[:16]
    how = (f"calibrated {when} from {frame.get('runs')} runs" if frame.get("source") == "calibrate"
           else f"built {when}, never calibrated")
    return f"{frame.get('device')} on {host} ({hw}), {how}"


def warnings(frame: dict, here: dict | None, reference_now_ms: float | None, backend: str = "onnxruntime",
             fix: str = "`prune-lut calibrate --lut TABLE` re-anchors it to this device as it runs now") -> list[str]:
    """One line each for: another device than the frame's, and a reference drifted past the tolerance."""
    out = []
    diff = differences(frame, here or {}, backend)
    if diff:
        out.append(f"the table predicts in the milliseconds of {where(frame)}, and this is another device "
                   f"({'; '.join(diff)}); {fix}")
    d = drift(frame, reference_now_ms)
    if d["drift_pct"] is not None and abs(d["drift_pct"]) > 100 * DRIFT_TOLERANCE:
        out.append(f"the reference network runs in {d['measured_ms']:.4g} ms here, {d['drift_pct']:+.0f}% off the "
                   f"{d['frame_ms']:.4g} ms of the table's frame ({where(frame)}): predictions may be off by as "
                   f"much; {fix}")
    return out
