"""Architectures for validating a latency table: spread over the whole predicted latency range.

Uniform random widths concentrate around the middle of the range (a sum of many independent
genes), exactly where a table is easiest to get right. Validation needs the extremes too, and both
kinds of widths a user meets: the space's grid as it is, and widths rounded to the multiple the
device prefers (which run much faster per MAC). So a large candidate pool is drawn from several
generators, every candidate's latency is predicted (cheap), the predicted range is cut into equal
strata and each stratum gives one arch, alternating rounded and unrounded flavours.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Callable

from ..latency.spec import LayerSpec
from ..pruning.space import ChannelSpace

log = logging.getLogger(__name__)


@dataclass
class SampledArch:
    arch: dict[str, int]
    kind: str        # how it was drawn: random | ratio | uniform | full | smallest
    rounded: bool    # every width a multiple of the device's multiple
    predicted_ms: float


def snap(space: ChannelSpace, arch: dict[str, int], multiple: int) -> dict[str, int]:
    """Each width moved to the nearest choice that is a multiple of ``multiple`` (if the gene has one)."""
    out = {}
    for n, g in space.genes.items():
        ok = [c for c in g.choices if c % multiple == 0] or list(g.choices)
        out[n] = min(ok, key=lambda c: (abs(c - arch[n]), -c))
    return out


def is_rounded(arch: dict[str, int], multiple: int) -> bool:
    return all(w % multiple == 0 for w in arch.values())


def _ratio_arch(space: ChannelSpace, rng: random.Random) -> dict[str, int]:
    """Every gene near one shared ratio (drawn uniformly), jittered per gene: spans the latency range."""
    r = rng.uniform(0.08, 1.0)
    out = {}
    for n, g in space.genes.items():
        target = r * g.base * rng.uniform(0.75, 1.25)
        out[n] = min(g.choices, key=lambda c: abs(c - target))
    return out


def candidate_pool(space: ChannelSpace, size: int, rng: random.Random, multiple: int) -> list[tuple[dict, str]]:
    """(arch, kind) candidates: uniform-random genes, shared-ratio archs, uniform archs, full, smallest."""
    pool = [(space.full(), "full"), (space.smallest(), "smallest")]
    pool += [(space.uniform(r), "uniform") for r in space.grid]
    while len(pool) < size:
        pool.append((space.random(rng), "random") if rng.random() < 0.3 else (_ratio_arch(space, rng), "ratio"))
    if multiple > 1:  # rounded twins, so every stratum can offer both flavours
        pool += [(snap(space, a, multiple), k) for a, k in pool[: size // 2]]
    return pool


def stratified_archs(space: ChannelSpace, n: int, predict_ms: Callable[[list[LayerSpec]], float],
                     seed: int = 0, multiple: int = 1, pool_size: int | None = None) -> list[SampledArch]:
    """``n`` distinct archs, one per equal-width stratum of the predicted latency range.

    ``predict_ms`` maps an arch's layer specs to a latency (the table sum). ``multiple`` is the
    device's preferred channel multiple: strata alternate between archs whose widths are all
    multiples of it and archs that are not (when the space's grid allows both).
    """
    rng = random.Random(seed)
    pool_size = pool_size or max(600, 30 * n)
    seen: set[tuple] = set()
    cands: list[SampledArch] = []
    for arch, kind in candidate_pool(space, pool_size, rng, multiple):
        v = space.vector(arch)
        if v in seen:
            continue
        seen.add(v)
        cands.append(SampledArch(arch, kind, multiple > 1 and is_rounded(arch, multiple),
                                 predict_ms(space.layer_specs(arch))))
    if len(cands) < n:
        log.warning("the space has only %d distinct candidates for %d samples", len(cands), n)
        n = len(cands)
    lo, hi = min(c.predicted_ms for c in cands), max(c.predicted_ms for c in cands)
    width = (hi - lo) / n or 1.0
    strata: list[list[SampledArch]] = [[] for _ in range(n)]
    for c in cands:
        strata[min(n - 1, int((c.predicted_ms - lo) / width))].append(c)
    both = any(c.rounded for c in cands) and any(not c.rounded for c in cands)
    chosen: list[SampledArch | None] = [None] * n
    used: set[int] = set()
    for i, stratum in enumerate(strata):
        want_rounded = i % 2 == 0
        pick = [c for c in stratum if not both or c.rounded == want_rounded] or stratum
        if pick:
            chosen[i] = rng.choice(pick)
            used.add(id(chosen[i]))
    for i in range(n):  # empty strata borrow the nearest unused candidate to their centre
        if chosen[i] is None:
            centre = lo + (i + 0.5) * width
            chosen[i] = min((c for c in cands if id(c) not in used), key=lambda c: abs(c.predicted_ms - centre))
            used.add(id(chosen[i]))
    return chosen
