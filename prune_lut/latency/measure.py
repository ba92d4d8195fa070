"""Measure ONNX models on a device with the one protocol of ``worker.py``.

Public API (used by the build, by ``validate`` and by the remote transport)::

    measure(device, model, nodes=False) -> Measurement          # one model, end to end
    measure_many(device, models, nodes=False) -> [Measurement]  # interleaved round-robin
    measure_beside(device, model, other) -> Measurement          # a large net, beside one other
    get_meter(device, host=None) -> meter with .info() and .measure_many(models, nodes, protocol)
    usable(device) -> (bool, reason)

``model`` may be ONNX bytes, an ``onnx.ModelProto`` or a path. To cancel drift when comparing
networks, pass them (plus a reference network) to one ``measure_many`` call: their runs are taken
in alternating chunks, so a slow minute slows all of them alike.

A meter is anything with ``info() -> dict`` (host description for provenance) and
``measure_many(models: list[bytes], nodes: bool | list[bool], protocol: dict | None) -> list[dict]``
(the worker's reply bodies; ``nodes`` may be one flag per model). :class:`LocalMeter` calls the worker in-process; the remote transport
(``latency/remote.py``) serves the same two methods over SSH when the profile or ``--host`` names
a host.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from ..devices import Device, get_device
from ..errors import UserError
from . import worker


@dataclass
class Measurement:
    """One model's figures: end to end (no profiling) and, with ``nodes``, per backend node."""

    median_ms: float
    spread_ms: float
    reps: int
    nodes: dict[str, float] | None = None
    node_spreads: dict[str, float] | None = None
    node_reps: int | None = None
    node_total_ms: float | None = None
    profiled_median_ms: float | None = None

    @classmethod
    def from_dict(cls, d: dict) -> "Measurement":
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})

    def to_dict(self) -> dict:
        return asdict(self)


def model_bytes(model) -> bytes:
    """ONNX bytes from bytes, a ModelProto or a path."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, os.PathLike)):
        p = Path(model)
        if not p.is_file():
            raise UserError(f"{p}: no such ONNX file")
        return p.read_bytes()
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    raise TypeError(f"cannot measure a {type(model).__name__}; give ONNX bytes, a ModelProto or a path")


def usable(device: Device) -> tuple[bool, str]:
    """Whether ``device`` can be measured from this host, and why (not)."""
    if device.host:
        return True, f"remote: measured over ssh on {device.host}"
    if device.remote_only:
        return False, ("describes another board; measure it there with `--host USER@BOARD` "
                       "or a copy of the profile with `host = ...`")
    if device.backend == "onnxruntime":
        if importlib.util.find_spec("onnxruntime") is None:
            return False, "onnxruntime is not installed (pip install onnxruntime)"
        import onnxruntime as ort
        prov = device.provider or "CPUExecutionProvider"
        if prov not in ort.get_available_providers():
            return False, f"{prov} is not in this onnxruntime build ({', '.join(ort.get_available_providers())})"
        return True, f"onnxruntime {ort.__version__}, {prov}"
    if device.backend == "torch":
        import torch
        if (device.device or "cpu").startswith("cuda") and not torch.cuda.is_available():
            return False, f"torch {torch.__version__} sees no CUDA GPU on this host"
        return True, f"torch {torch.__version__} on {device.device or 'cpu'}"
    if device.backend == "tensorrt":
        if importlib.util.find_spec("tensorrt") is None:
            return False, "TensorRT is not installed (pip install tensorrt cuda-python, on a host with an NVIDIA GPU)"
        if importlib.util.find_spec("cuda") is None:
            return False, "cuda-python is not installed (pip install cuda-python)"
        return True, "tensorrt installed (GPU checked when an engine is built)"
    return False, f"unknown backend {device.backend}"


class LocalMeter:
    """Measures on this host, in this process, with ``worker.measure_models``."""

    def __init__(self, device: Device):
        ok, why = usable(device)
        if not ok:
            raise UserError(f"device {device.name!r} cannot be measured here: {why}")
        self.device = device

    def info(self) -> dict:
        return worker.host_info()

    def measure_many(self, models: list[bytes], nodes: bool | list[bool] = False, protocol: dict | None = None) -> list[dict]:
        proto = {**self.device.protocol, **(protocol or {})}
        return worker.measure_models(models, self.device.backend, self.device.options(), proto, nodes)


def get_meter(device: Device | str, host: str | None = None):
    """A meter for ``device``: local, or over SSH when ``host`` (or the profile's ``host``) is set."""
    dev = get_device(device) if isinstance(device, str) else device
    host = host or dev.host
    if host:
        if importlib.util.find_spec("prune_lut.latency.remote") is None:
            raise UserError("remote measurement is not available in this prune-lut (latency/remote.py missing)")
        from . import remote

        return remote.RemoteMeter(dev, host)
    return LocalMeter(dev)


def measure_many(device: Device | str, models, nodes: bool | list[bool] = False, protocol: dict | None = None,
                 meter=None) -> list[Measurement]:
    """Measure several models interleaved (see the module docstring)."""
    meter = meter or get_meter(device)
    return [Measurement.from_dict(r) for r in meter.measure_many([model_bytes(m) for m in models], nodes, protocol)]


def measure_beside(device: Device | str, model, other, meter=None) -> Measurement:
    """Measure ``model`` interleaved with ``other`` only, as validation times the table's reference.

    Interleaved with many nets, a large net's weights leave the cache between its runs and it runs
    slower (``benchmarks/measure_context.py``, docs/BENCHMARKS.md); small nets do not move.
    """
    return measure_many(device, [other, model], meter=meter)[1]


def measure(device: Device | str, model, nodes: bool = False, protocol: dict | None = None,
            meter=None) -> Measurement:
    """Measure one model end to end on ``device`` with the device's protocol."""
    return measure_many(device, [model], nodes, protocol, meter)[0]
