"""prune-lut: per-device latency lookup tables, and MetaPruning channel search that uses them.

The public API, for a Python user (imported on first use, so ``import prune_lut`` stays light)::

    space = prune_lut.get_space("mobilenet_v2", resolution=224, multiple=8)
    lut = prune_lut.LUT.load("cpu-mnv2.json.gz")
    ms = prune_lut.Predictor(lut).predict_ms(space.layer_specs(space.uniform(0.5)))
    m = prune_lut.measure("cpu", "net.onnx")                   # end to end on a device profile
    table = prune_lut.build_table(space, prune_lut.get_device("cpu"), "cpu.json.gz")
    data = prune_lut.load_data("fashion-mnist", resolution=14)
    prune_lut.train(space, data, out="pn.pt")                  # a PruningNet
    result = prune_lut.search("pn.pt", ["cpu.json.gz"], [0.2], prune_lut.EvolutionConfig(), "result.json")
    prune_lut.export("winner.onnx", space, arch)               # ONNX (or fmt="torch")
    prune_lut.retrain(space, arch, data, out="winner.pt")      # from scratch
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "get_space": ("pruning.space", "get_space"),
    "list_families": ("pruning.space", "list_families"),
    "ChannelSpace": ("pruning.space", "ChannelSpace"),
    "load_arch": ("pruning.arch", "load_arch"),
    "save_arch": ("pruning.arch", "save_arch"),
    "build_net": ("pruning.net", "build_net"),
    "LUT": ("latency.lutfile", "LUT"),
    "Predictor": ("latency.predictor", "Predictor"),
    "get_device": ("devices", "get_device"),
    "measure": ("latency.measure", "measure"),
    "measure_many": ("latency.measure", "measure_many"),
    "build_table": ("tables.build", "build_space_table"),
    "load_data": ("pruning.data", "load_data"),
    "train": ("pruning.train", "train_pruningnet"),
    "retrain": ("pruning.train", "train_plain"),
    "EvolutionConfig": ("pruning.evolution", "EvolutionConfig"),
    "search": ("pruning.search", "search_checkpoint"),
    "export": ("pruning.export", "export_arch"),
    "UserError": ("errors", "UserError"),
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'prune_lut' has no attribute {name!r}")
    module, attr = _API[name]
    value = getattr(importlib.import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
