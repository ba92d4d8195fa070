"""BatchNorm recalibration: give a network generated for one arch the statistics of that arch.

A PruningNet's BatchNorm statistics mix every arch it was trained on; MetaPruning therefore
recomputes them for each candidate before scoring it (reset, forward sub-train batches in train
mode without gradients, cumulative average), then evaluates in eval mode.
"""
from __future__ import annotations

from itertools import islice
from typing import Iterable

import torch
from torch import nn


def bn_modules(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(net: nn.Module, batches_iterable: Iterable, num_batches: int) -> None:
    """Reset every BatchNorm's running statistics to the cumulative average over ``num_batches``
    batches (x or (x, y)) of ``batches_iterable``; leaves ``net`` in eval mode."""
    bns = bn_modules(net)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    net.train()
    try:
        device = next(net.parameters()).device
        for batch in islice(batches_iterable, num_batches):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            net(x.to(device, non_blocking=True))
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        net.eval()
