"""One model's predicted latency, layer by layer: what each operator costs and how much of the
total the table really measured.

For a list of layer specs (a space's arch, or an ONNX file read by :mod:`.onnx_specs`) each layer
gets its key, its table time and where that time came from:

- ``measured``: the table's entry was profiled on the device;
- ``predicted``: the build filled the entry with its regressor (a build stopped by its time budget);
- ``regressor``: the table has no entry; :func:`.regress.fit_predict` fits the build's regressor on
  the table's measured entries, once per call for all missing keys. On the shipped 5,640-entry
  MobileNetV2-224 cpu table that fit took 2.5 s (one OpenMP thread, this project's shared 2-vCPU
  VM, measured once); a model whose keys are all in the table costs no fit.

The total is :meth:`Predictor.predict_sums` of those times: the same calibration and interval as
``Predictor.predict``. Per-layer calibrated times are each layer's table time scaled by
total / table sum, so they add up to the total. A calibration is not per layer (``linear`` has an
intercept, ``per_op`` one factor per op group), so any split is a choice; the proportional one keeps
each layer's share of the table sum and never gives a layer a negative time.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

from ..errors import UserError
from .onnx_specs import Unsupported, read_onnx_specs
from .predictor import GROUPS, Predictor, op_group
from .regress import fit_predict
from .spec import LayerSpec

log = logging.getLogger(__name__)
SOURCES = ("measured", "predicted", "regressor")


@dataclass(frozen=True)
class LayerTime:
    """One layer: its key, op, where its time came from, its table time and its share of the
    calibrated total (ms), and the ONNX nodes it stands for (when read from a file)."""

    key: str
    op: str
    source: str
    table_ms: float
    ms: float
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**asdict(self), "nodes": list(self.nodes)}


@dataclass
class ModelPrediction:
    """A model's calibrated latency with its interval, per-layer times, and what the table lacked.

    ``measured_share``: the share of the table sum that came from measured entries;
    ``regressor_s``: seconds the regressor fit took (None when no key was missing);
    ``unsupported``: operators no key expresses (not in the total: the total is a lower bound
    when there are any); ``conv_nodes``/``convs_mapped``: the ONNX graph's Conv nodes and how many
    became layers (None for specs that did not come from a file).
    """

    source: str
    ms: float
    low: float
    high: float
    table_sum_ms: float
    calibrated: bool
    calibration: str | None
    measured_share: float
    layers: list[LayerTime]
    regressor_s: float | None = None
    unsupported: list[Unsupported] = field(default_factory=list)
    conv_nodes: int | None = None
    convs_mapped: int | None = None

    def counts(self) -> dict[str, int]:
        """Layers per source."""
        return {s: sum(x.source == s for x in self.layers) for s in SOURCES}

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k not in ("layers", "unsupported")}
        return {**d, "counts": self.counts(), "layers": [x.to_dict() for x in self.layers],
                "unsupported": [u.to_dict() for u in self.unsupported], "n_unsupported": len(self.unsupported)}


def _fill(predictor: Predictor, missing: list[str], source: str) -> dict[str, float]:
    """Times for keys the table lacks, from the regressor fitted on its measured entries."""
    entries = predictor.lut.entries
    measured = {k: e["median_ms"] for k, e in entries.items() if e["source"] == "measured"}
    try:
        return fit_predict(measured, missing)
    except ValueError:
        raise UserError(f"{source}: the table lacks {len(missing)} of the model's keys (e.g. {missing[0]}) and has only "
                        f"{len(measured)} measured entries, too few to fit the regressor; build a fuller table") from None


def predict_layers(predictor: Predictor, specs: Sequence[LayerSpec], nodes: Sequence[tuple[str, ...]] | None = None,
                   source: str = "model") -> ModelPrediction:
    """Predict a network given as its layer specs, with the per-layer breakdown (module docstring).

    ``nodes``: per spec, the ONNX nodes it came from. Refuses (UserError) a model none of whose
    convs has a table entry: its table is for another space or resolution.
    """
    entries = predictor.lut.entries
    convs = [s for s in specs if s.op == "conv"]
    if not any(s.key in entries for s in convs):
        space = predictor.lut.space or {}
        dev = (predictor.lut.device or {}).get("name", "DEVICE")
        size = specs[0].size if specs else "?"
        raise UserError(
            f"{source}: none of its {len(convs)} convs is in the table (a {space.get('family')} table at "
            f"{space.get('resolution')}, the model's input is {size}); use or build a table for this network "
            f"(`prune-lut build --device {dev} --family FAMILY --resolution {size}`)")
    missing = predictor.lut.missing(s.key for s in specs)
    filled, seconds = {}, None
    if missing:
        t0 = time.perf_counter()
        filled = _fill(predictor, missing, source)
        seconds = time.perf_counter() - t0
        log.info("%s: %d keys not in the table, filled by the regressor in %.1f s", source, len(missing), seconds)
    sums, var, macs = [0.0] * len(GROUPS), 0.0, 0
    rows: list[tuple[LayerSpec, str, float]] = []
    gindex = {g: i for i, g in enumerate(GROUPS)}
    for s in specs:
        e = entries.get(s.key)
        ms, src = (filled[s.key], "regressor") if e is None else (float(e["median_ms"]), e["source"])
        var += 0.0 if e is None else float(e.get("spread_ms", 0.0)) ** 2
        sums[gindex[op_group(s)]] += ms
        macs += s.macs
        rows.append((s, src, ms))
    p = predictor.predict_sums(sums, var, macs)
    if p.table_sum_ms > 0:
        shares = [ms * p.ms / p.table_sum_ms for _, _, ms in rows]
    else:  # every layer fused away (0 ms): split evenly
        shares = [p.ms / len(rows)] * len(rows)
    nodes = list(nodes) if nodes is not None else [()] * len(rows)
    layers = [LayerTime(s.key, s.op, src, ms, share, tuple(n))
              for (s, src, ms), share, n in zip(rows, shares, nodes)]
    measured = sum(x.table_ms for x in layers if x.source == "measured")
    return ModelPrediction(source, p.ms, p.low, p.high, p.table_sum_ms, p.calibrated, predictor.calibration_source,
                           measured / p.table_sum_ms if p.table_sum_ms > 0 else 0.0, layers, seconds)


def predict_onnx(predictor: Predictor, model: str | os.PathLike | bytes, source: str | None = None) -> ModelPrediction:
    """Read an ONNX CNN (:func:`.onnx_specs.read_onnx_specs`) and predict it layer by layer; its
    unsupported operators are passed through (listed, counted, not in the total)."""
    read = read_onnx_specs(model, source)
    if not read.layers or not read.convs_mapped:
        first = read.unsupported[0] if read.unsupported else None
        why = f" (first: {first.node}, {first.op_type}: {first.reason})" if first else ""
        raise UserError(f"{read.source}: none of its {read.conv_nodes} Conv nodes has a table key{why}; "
                        "export the network with square inputs and 'same' padding")
    out = predict_layers(predictor, read.specs, [x.nodes for x in read.layers], read.source)
    out.unsupported, out.conv_nodes, out.convs_mapped = read.unsupported, read.conv_nodes, read.convs_mapped
    return out
