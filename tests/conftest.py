import random

import pytest
import torch

from prune_lut.pruning.space import list_families

FAMILIES = list_families()


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


def settle_bn(net: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Give BatchNorm realistic running statistics (one train-mode pass), then eval: outputs stay O(1)."""
    net.train()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative average: one batch sets the statistics
        net(x)
    return net.eval()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(0)
