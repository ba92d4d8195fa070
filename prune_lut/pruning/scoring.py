"""Scoring networks: top-1 accuracy, and the PruningNet's network for an arch, BN recalibrated, scored.

A PruningNet's BatchNorm statistics mix every arch it was trained on, so an arch's generated network
is only judged after its statistics are recomputed for it (:func:`bn.recalibrate_bn`), as
MetaPruning does. :class:`GeneratedNets` is the one place that does generate -> recalibrate -> score:
the search's fitness, training's per-epoch validation, ``export --weights pruningnet`` and the
quickstart all use it.
"""
from __future__ import annotations

import time
from itertools import islice

import torch
from torch import nn

from .bn import recalibrate_bn
from .data import DataSplits, batches, cycle_batches
from .net import PrunedNet


@torch.no_grad()
def evaluate(net: nn.Module, loader, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of ``net`` in eval mode over ``loader`` (batches of (x, y), or a Dataset)."""
    if isinstance(loader, torch.utils.data.Dataset):
        loader = batches(loader, batch_size)
    net.eval()
    device = next(net.parameters()).device
    correct = total = 0
    for x, y in loader:
        pred = net(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    return correct / max(total, 1)


class GeneratedNets:
    """The PruningNet's plain network for any arch, BatchNorm recalibrated, and its accuracy.

    The recalibration batches (``recal_batches`` sub-train batches of ``batch_size``, drawn once with
    ``seed``) are the same for every arch, so a score depends on the arch alone, on whichever process
    it is computed. ``times`` accumulates seconds per phase (generate, recalibrate, evaluate).
    """

    def __init__(self, pruningnet, data: DataSplits, recal_batches: int = 4, batch_size: int = 128, seed: int = 0):
        if recal_batches < 1 or batch_size < 1:
            raise ValueError("recal_batches and batch_size must be >= 1")
        self.pruningnet = pruningnet
        self.space = pruningnet.space
        self.data = data
        self.batch_size = min(batch_size, max(1, len(data.train)))
        self.recal = [x for x, _ in islice(cycle_batches(data.train, self.batch_size, seed), recal_batches)]
        self.times: dict[str, float] = {}

    def describe(self) -> dict:
        return {"recal_batches": len(self.recal), "recal_batch_size": self.batch_size,
                "sub_val_images": len(self.data.val), "data": self.data.spec}

    def _timed(self, phase: str, t0: float) -> float:
        t = time.perf_counter()
        self.times[phase] = self.times.get(phase, 0.0) + t - t0
        return t

    def network(self, arch: dict[str, int]) -> PrunedNet:
        """The generated network for ``arch`` with recalibrated BatchNorm (eval mode): what is scored."""
        t0 = time.perf_counter()
        net = self.pruningnet.generate(arch)
        t0 = self._timed("generate", t0)
        recalibrate_bn(net, self.recal, len(self.recal))
        self._timed("recalibrate", t0)
        return net

    def accuracy(self, arch: dict[str, int], split: str = "val") -> float:
        """Top-1 of the arch's recalibrated network on ``split`` (val: the sub-validation split)."""
        net = self.network(arch)
        t0 = time.perf_counter()
        acc = evaluate(net, getattr(self.data, split), 4 * self.batch_size)
        self._timed("evaluate", t0)
        return acc
