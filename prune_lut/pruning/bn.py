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


@torch.no_grad()
def fold_bn(net: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that follows a conv in an ``nn.Sequential`` into that conv's
    weight and bias, in place (scoring only: the network computes the same, with one op less per conv)."""
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
                shift = bn.bias - bn.running_mean * scale
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(shift if conv.bias is None else conv.bias * scale + shift)
                seq[i + 1] = nn.Identity()
    return net
