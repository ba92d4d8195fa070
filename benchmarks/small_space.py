"""The space the Fashion-MNIST benchmarks search and train: small-input MobileNetV2 shaped by the data."""
from __future__ import annotations

from prune_lut.pruning.space import ChannelSpace, get_space


def small_space(data) -> ChannelSpace:
    """The small-input (stride-1 stem) MobileNetV2 space for ``data``'s resolution, classes and channels."""
    return get_space("mobilenet_v2", resolution=data.resolution, num_classes=data.num_classes,
                     in_channels=data.in_channels, small_input=True, multiple=8)
