"""Real ONNX files for the ONNX reader's tests: torchvision networks through torch's own exporter,
and the arch of our space that each one is."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torchvision

from prune_lut.pruning.space import ChannelSpace, get_space


def torchvision_net(name: str, **kw) -> torch.nn.Module:
    """A torchvision model with random weights (nothing is downloaded), in eval mode."""
    return getattr(torchvision.models, name)(weights=None, **kw).eval()


def export_torch(net: torch.nn.Module, path: Path, resolution: int, batch: int = 1) -> Path:
    """``torch.onnx.export`` (TorchScript exporter, opset 17) keeping the BatchNormalization nodes
    (its default eval mode folds them into the convs; ORT folds them, so must the reader), with
    constant folding off as torch recommends for that mode (the graph keeps its shape arithmetic)."""
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice, once per export
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(net, torch.randn(batch, 3, resolution, resolution), str(path), dynamo=False,
                          opset_version=17, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    return path


def matching_arch(family: str, net: torch.nn.Module, resolution: int) -> tuple[ChannelSpace, dict[str, int]]:
    """The space and arch whose convs have ``net``'s widths, read from its own conv modules (same
    order as the space's convs). The grid holds exactly the arch's ratios, so the space stays small
    (torchvision's width_mult rounds each width, so a middle width is not always ``w`` of its base)."""
    full = get_space(family, resolution=resolution, multiple=8, grid=(1.0,))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    ours = list(full.convs())
    assert len(convs) == len(ours), (len(convs), len(ours))
    arch = {c.cout: m.out_channels for c, m in zip(ours, convs) if isinstance(c.cout, str)}
    grid = sorted({w / full.genes[g].base for g, w in arch.items()})
    space = get_space(family, resolution=resolution, multiple=8, grid=tuple(grid))
    return space, space.check_arch(arch)
