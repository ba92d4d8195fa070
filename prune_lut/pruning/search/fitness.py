"""The search's fitness: sub-validation accuracy of the PruningNet's network for each arch.

Each arch's network is generated, its BatchNorm recalibrated and scored by :class:`GeneratedNets`
(the same recalibration batches for every arch, so a score depends on the arch alone); scores are
cached per arch. Under torchrun each process scores its share of a generation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..scoring import GeneratedNets

Arch = dict[str, int]


@dataclass
class SearchTimes:
    """Where evaluation time went (filled by the fitness, read for progress lines and the result)."""

    evaluations: int = 0
    total_s: float = 0.0
    parts_s: dict[str, float] = field(default_factory=dict)  # generate / recalibrate / evaluate


class PruningNetFitness:
    """Top-1 on the held-out sub-validation split of the PruningNet's network for an arch, cached."""

    def __init__(self, nets: GeneratedNets, times: SearchTimes | None = None):
        self.nets = nets
        self.space = nets.space
        self.times = times or SearchTimes()
        self.times.parts_s = nets.times  # one record of the phases
        self.cache: dict[tuple, float] = {}

    def describe(self) -> dict:
        return self.nets.describe()

    def score(self, arch: Arch) -> float:
        key = self.space.vector(arch)
        if key not in self.cache:
            t0 = time.perf_counter()
            self.cache[key] = self.nets.accuracy(arch)
            self.times.total_s += time.perf_counter() - t0
            self.times.evaluations += 1
        return self.cache[key]

    def __call__(self, archs: list[Arch]) -> list[float]:
        return [self.score(a) for a in archs]


def split_over_ranks(score: Callable[[list[Arch]], list[float]]) -> Callable[[list[Arch]], list[float]]:
    """Wrap a batch fitness so each torch.distributed rank scores its share (archs[rank::world]).

    Every rank runs the same (seeded) evolution and so asks for the same batch; the scores are
    gathered to all ranks in the original order, so the search goes on identically everywhere.
    Without an initialized process group this is ``score`` itself.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return score

    def wrapped(archs: list[Arch]) -> list[float]:
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = score(archs[rank::world]) if archs[rank::world] else []
        parts: list = [None] * world
        dist.all_gather_object(parts, list(mine))
        out = [0.0] * len(archs)
        for r, p in enumerate(parts):
            out[r::world] = p
        return out

    return wrapped
