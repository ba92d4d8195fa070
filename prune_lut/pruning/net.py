"""The plain pruned network for an arch: ordinary PyTorch modules with exactly the arch's channels."""
from __future__ import annotations

import torch
from torch import nn

from .space import Block, ChannelSpace, Conv, Head, MaxPool

ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "none": nn.Identity}


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + activation: the unit every family is made of."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int, act: str):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), ACTS[act](inplace=True) if act != "none" else nn.Identity())


class ConvBlock(nn.Module):
    """``act(body(x) + shortcut(x))`` when residual, else ``body(x)``."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Module | None, residual: bool, act: str):
        super().__init__()
        self.body, self.shortcut, self.residual = body, shortcut, residual
        self.act = ACTS[act]() if act != "none" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        if not self.residual:
            return y
        return self.act(y + (x if self.shortcut is None else self.shortcut(x)))


class PrunedNet(nn.Module):
    """A family's network at one arch. ``convs`` maps each conv's name in the space to its module."""

    def __init__(self, space: ChannelSpace, arch: dict[str, int]):
        super().__init__()
        arch = space.check_arch(arch)
        self.arch = dict(arch)
        convs: dict[str, ConvBNAct] = {}

        def make(c: Conv) -> ConvBNAct:
            cin, cout = space.width(c.cin, arch), space.width(c.cout, arch)
            convs[c.name] = m = ConvBNAct(cin, cout, c.kernel, c.stride, cin if c.depthwise else 1, c.act)
            return m

        layers: list[nn.Module] = []
        self.classifier: nn.Linear | None = None
        for u in space.units:
            if isinstance(u, Conv):
                layers.append(make(u))
            elif isinstance(u, Block):
                body = nn.Sequential(*[make(c) for c in u.body])
                short = make(u.shortcut) if u.shortcut is not None else None
                layers.append(ConvBlock(body, short, u.residual, u.act))
            elif isinstance(u, MaxPool):
                layers.append(nn.MaxPool2d(u.kernel, u.stride, u.kernel // 2))
            elif isinstance(u, Head):
                self.classifier = nn.Linear(space.width(u.cin, arch), u.num_classes)
        self.features = nn.Sequential(*layers)
        self.convs = convs  # a plain dict: the modules are registered once, under features
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(x)


def build_net(space: ChannelSpace, arch: dict[str, int]) -> PrunedNet:
    """The plain network for ``arch`` (validated), freshly initialized."""
    return PrunedNet(space, arch)
