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

from .bn import fold_bn, recalibrate_bn
from .data import DataSplits, TensorImages, batches, cycle_batches
from .net import PrunedNet
from .pruningnet import KernelCache

# Sub-train batches of 128 forwarded to recalibrate BatchNorm before scoring an arch: two rank archs
# as four did against 16 within 0.01-0.014 Spearman, in half the time (docs/BENCHMARKS.md).
RECAL_BATCHES, RECAL_BATCH_SIZE = 2, 128


@torch.no_grad()
def top1_hits(net: nn.Module, loader, batch_size: int = 256) -> torch.Tensor:
    """Whether ``net`` (eval mode) gets each image of ``loader`` (batches of (x, y), or a Dataset) right."""
    if isinstance(loader, torch.utils.data.Dataset):
        loader = batches(loader, batch_size)
    net.eval()
    device = next(net.parameters()).device
    hits = [net(x.to(device)).argmax(1).cpu() == y for x, y in loader]
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)


def evaluate(net: nn.Module, loader, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of ``net`` in eval mode over ``loader`` (batches of (x, y), or a Dataset)."""
    return _share(top1_hits(net, loader, batch_size))


def _share(hits: torch.Tensor) -> float:
    return int(hits.sum()) / max(len(hits), 1)


class GeneratedNets:
    """The PruningNet's plain network for any arch, BatchNorm recalibrated, and its accuracy.

    The recalibration batches (``recal_batches`` sub-train batches of ``batch_size``, drawn once with
    ``seed``) are the same for every arch, so a score depends on the arch alone, on whichever process
    it is computed. ``times`` accumulates seconds per phase (generate, recalibrate, evaluate).
    Generated kernels are cached for the object's life: the PruningNet's weights must not change meanwhile.
    """

    def __init__(self, pruningnet, data: DataSplits, recal_batches: int | None = None, batch_size: int | None = None,
                 seed: int = 0):
        recal_batches = RECAL_BATCHES if recal_batches is None else recal_batches
        batch_size = RECAL_BATCH_SIZE if batch_size is None else batch_size
        if recal_batches < 1 or batch_size < 1:
            raise ValueError("recal_batches and batch_size must be >= 1")
        self.pruningnet = pruningnet
        self.space = pruningnet.space
        self.data = data
        self.batch_size = min(batch_size, max(1, len(data.train)))
        self.recal = [_channels_last(x) for x, _ in islice(cycle_batches(data.train, self.batch_size, seed),
                                                            recal_batches)]
        self._batches: dict[str, list] = {}  # a split's images, batched once
        self.times: dict[str, float] = {}
        self.kernels = KernelCache()

    def describe(self) -> dict:
        return {"recal_batches": len(self.recal), "recal_batch_size": self.batch_size,
                "sub_val_images": len(self.data.val), "data": self.data.spec}

    def _timed(self, phase: str, t0: float) -> float:
        t = time.perf_counter()
        self.times[phase] = self.times.get(phase, 0.0) + t - t0
        return t

    def _recalibrated(self, arch: dict[str, int]) -> PrunedNet:
        """The arch's generated network, BatchNorm recalibrated, in channels-last memory (about 40%
        faster on CPU for these small depthwise nets; the same numbers)."""
        t0 = time.perf_counter()
        net = self.pruningnet.generate(arch, self.kernels).to(memory_format=torch.channels_last)
        t0 = self._timed("generate", t0)
        recalibrate_bn(net, self.recal, len(self.recal))
        self._timed("recalibrate", t0)
        return net

    def network(self, arch: dict[str, int]) -> PrunedNet:
        """The generated network for ``arch`` with recalibrated BatchNorm (eval mode): what is scored."""
        return self._recalibrated(arch).to(memory_format=torch.contiguous_format)

    def hits(self, arch: dict[str, int], split: str = "val") -> torch.Tensor:
        """Per image of ``split`` (val: the sub-validation split), whether the arch's recalibrated
        network gets it right (in the split's order: two archs' hits pair up image by image)."""
        net = fold_bn(self._recalibrated(arch))
        t0 = time.perf_counter()
        hits = top1_hits(net, self._split(split))
        self._timed("evaluate", t0)
        return hits

    def accuracy(self, arch: dict[str, int], split: str = "val") -> float:
        """Top-1 of the arch's recalibrated network on ``split``."""
        return _share(self.hits(arch, split))

    def _split(self, split: str):
        """The split's batches in channels-last memory; in-memory images converted once and kept."""
        ds = getattr(self.data, split)
        if split in self._batches:
            return self._batches[split]
        converted = ((_channels_last(x), y) for x, y in batches(ds, 4 * self.batch_size))
        if isinstance(ds, TensorImages):
            self._batches[split] = converted = list(converted)
        return converted


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)
