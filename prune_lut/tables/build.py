"""`prune-lut build` for a channel space: every key the space can produce, measured on a device.

The space gives the keys (``coverage.all_specs``) and, for whatever keys are still missing, a few
networks that cover them (``coverage.covering_archs``); ``latency.build`` opens the table (new, or
the interrupted build) and profiles those networks into it.
"""
from __future__ import annotations

import os
import random

from ..devices import Device
from ..latency.build import build_table, open_table
from ..latency.lutfile import LUT
from ..pruning.space import ChannelSpace
from .coverage import all_specs, covering_archs
from .networks import space_network


def build_space_table(space: ChannelSpace, device: Device, out: str | os.PathLike, meter=None,
                      time_budget_min: float | None = None, shard: str | None = None, resume: bool = False,
                      seed: int = 0, heldout: int = 8, group: int = 4, progress: bool = True,
                      force: bool = False) -> LUT:
    """Measure (or resume measuring) every key of ``space`` on ``device`` into the LUT file ``out``
    (``force``: a new table replaces an existing ``out``)."""
    from ..latency.measure import get_meter

    meter = meter or get_meter(device)
    lut, targets = open_table(out, device, meter, {**space.describe(), "hash": space.hash}, list(all_specs(space)),
                              shard, resume, force)
    rng = random.Random(seed + 1)
    held = [space_network(space, space.random(rng), device.batch) for _ in range(heldout)]

    def plan(missing: list[str]):
        return [space_network(space, a, device.batch) for a in covering_archs(space, missing, seed)]

    import torch

    threads = torch.get_num_threads()
    if device.backend != "torch":  # exports run beside the measurements: keep them on one core
        torch.set_num_threads(1)
    try:
        return build_table(lut, out, meter, plan, targets, space_network(space, space.full(), device.batch),
                           heldout=held, group=group,
                           time_budget_s=None if time_budget_min is None else 60 * time_budget_min,
                           seed=seed, progress=progress)
    finally:
        torch.set_num_threads(threads)
