"""MetaPruning compatibility: its floor grid, its MobileNetV2 space, and its released archs
(examples/archs/) with the reference's MAC counts (224x224, 1000 classes, conv + fc)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prune_lut.errors import UserError
from prune_lut.latency.lutfile import LUT
from prune_lut.lut_data import __file__ as lut_data_init
from prune_lut.pruning.arch import arch_to_dict, load_arch
from prune_lut.pruning.net import build_net
from prune_lut.pruning.space import PAPER_GRID, ChannelSpace, get_space, grid_widths

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "archs"
SCALES = [(10 + 3 * i) / 100 for i in range(31)]  # MetaPruning's channel_scale, as its code computes it


@pytest.mark.parametrize("base", [22, 33, 44, 64, 100, 132, 448, 1024, 2048])
def test_floor_grid_is_metapruning_formula(base):
    ref = {int(base * s) for s in SCALES} | {base}
    assert grid_widths(base, PAPER_GRID, 1, "floor") == tuple(sorted(ref))


def test_floor_differs_from_round_where_the_reference_truncates():
    # 100 * 0.58 is 57.99999999999999 in floating point: the reference's int() gets 57, rounding 58
    floor = grid_widths(100, PAPER_GRID, 1, "floor")
    assert 57 in floor and 58 not in floor and 58 in grid_widths(100, PAPER_GRID, 1)
    # 44 * 0.13 = 5.72: the reference's stem width 5, rounding's 6
    assert 5 in grid_widths(44, PAPER_GRID, 1, "floor") and 6 not in grid_widths(44, PAPER_GRID, 1, "floor")
    assert 6 in grid_widths(44, PAPER_GRID, 1) and 5 not in grid_widths(44, PAPER_GRID, 1)


def test_rounding_is_carried_and_old_hashes_stay():
    plain, floor = get_space("resnet50"), get_space("resnet50", rounding="floor")
    assert "rounding" not in plain.describe() and floor.describe()["rounding"] == "floor"
    assert floor.hash != plain.hash
    assert ChannelSpace.from_description(floor.describe()).hash == floor.hash
    assert arch_to_dict(floor, floor.full())["rounding"] == "floor"
    # the shipped tables were hashed before the field existed: their spaces still hash the same
    for path in Path(lut_data_init).parent.glob("*.json.gz"):
        lut = LUT.load(path)
        assert ChannelSpace.from_description(lut.space).hash == lut.space_hash, path.name


@pytest.mark.parametrize("kw, message", [(dict(rounding="floor", multiple=8), "give multiple 1"),
                                         (dict(rounding="ceil"), "unknown grid rounding 'ceil'")])
def test_bad_rounding_refused(kw, message):
    with pytest.raises(UserError, match=message) as e:
        get_space("mobilenet_v2", **kw)
    assert "\n" not in str(e.value)


# ---- the reference's lists, mapped onto our genes ---------------------------------------------
def mobilenet_v1(widths: list[int]) -> dict[str, int]:
    """MetaPruning's 14 MobileNetV1 widths: the stem, then each pointwise conv (the last, 1024, is
    not pruned there; here it is the gene ``pw13`` at its full width)."""
    names = get_space("mobilenet_v1").gene_names
    assert len(widths) == len(names)
    return dict(zip(names, widths))


def resnet50(stem: int, stages: list[int], mids: list[int]) -> dict[str, int]:
    """MetaPruning's ResNet-50: stem, the 4 stage outputs (the last fixed at 2048 there), and one
    middle width per block, shared by its conv1 and conv2 as in our space."""
    sp = get_space("resnet50")
    mid_genes = [n for n, g in sp.genes.items() if g.kind == "mid"]
    assert len(mids) == len(mid_genes) == 16
    return {"stem": stem, **{f"stage{i}": w for i, w in enumerate(stages, 1)}, **dict(zip(mid_genes, mids))}


RELEASED = {  # file: (reference widths as our genes, the reference's conv + fc MACs in millions)
    "metapruning-mobilenet_v1-0.75x.json": (
        mobilenet_v1([31, 60, 81, 51, 202, 202, 389, 389, 250, 312, 481, 312, 870, 1024]), 311.66),
    "metapruning-resnet50-1G.json": (
        resnet50(42, [94, 281, 501, 2048], [25, 23, 25, 35, 47, 62, 55, 117, 79, 163, 79, 125, 117, 204, 343, 327]),
        1027.55),
    "metapruning-resnet50-2G.json": (
        resnet50(50, [156, 296, 624, 2048], [37, 37, 40, 89, 81, 108, 55, 248, 194, 163, 125, 232, 156, 404, 404, 358]),
        1989.93),
    "metapruning-mobilenet_v2-full.json": (get_space("mobilenet_v2_metapruning").full(), 569.52),
}


def _macs_by_hooks(net: torch.nn.Module, size: int) -> int:
    """MACs counted from a real forward pass (conv output elements x weights per output, fc weights)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out[0].numel() * m.weight[0].numel()
        else:
            total += m.weight.numel()
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    return total


@pytest.mark.parametrize("name", sorted(RELEASED))
def test_released_archs_build_with_the_reference_macs(name):
    genes, mmacs = RELEASED[name]
    space, arch = load_arch(EXAMPLES / name)
    assert arch == genes and space.resolution == 224 and space.num_classes == 1000
    assert round(space.macs(arch) / 1e6, 2) == mmacs
    net = build_net(space, arch).eval()
    assert _macs_by_hooks(net, 224) == space.macs(arch)
    assert json.loads((EXAMPLES / name).read_text()) == arch_to_dict(space, arch)


def test_metapruning_mobilenet_v2_has_the_reference_shapes():
    """Conv shapes of MetaPruning's MobileNetV2 (mobilenetv2/training/mobilenet_v2.py), rebuilt from
    its stage_out_channel list and stride rule, equal the family's full net."""
    stage_out = [44, 22, 33, 33, 44, 44, 44, 88, 88, 88, 88, 132, 132, 132, 224, 224, 224, 448]
    want = [(44, 3, 3, 2)]  # (out channels, in channels per group, kernel, stride)
    for i in range(1, 18):
        inp, oup = stage_out[i - 1], stage_out[i]
        mid = inp if i == 1 else 6 * inp
        stride = 2 if inp != oup and oup not in (132, 448) and i > 1 else 1
        want += [(mid, inp, 1, 1), (mid, 1, 3, stride), (oup, mid, 1, 1)]
    want.append((1280, 448, 1, 1))
    net = build_net(get_space("mobilenet_v2_metapruning"), get_space("mobilenet_v2_metapruning").full())
    got = [(m.out_channels, m.in_channels // m.groups, m.kernel_size[0], m.stride[0])
           for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert got == want and net.classifier.in_features == 1280


def test_cli_floor_grid_and_released_archs():
    """`--rounding floor` through the CLI gives the reference's widths; the examples export as ONNX and
    the floor grid refuses a channel multiple in one line."""
    import json as _json

    from click.testing import CliRunner

    from prune_lut.cli import main

    r = CliRunner().invoke(main, ["space", "resnet50", "--rounding", "floor", "--json"])
    assert r.exit_code == 0, r.output
    genes = {g["name"]: g["choices"] for g in _json.loads(r.output)["genes"]}
    assert genes["stem"] == sorted({int(64 * (10 + 3 * i) / 100) for i in range(31)})
    r = CliRunner().invoke(main, ["space", "resnet50", "--rounding", "floor", "--multiple", "8"])
    assert r.exit_code == 2 and "multiple 1" in r.output and len(r.output.strip().splitlines()) == 1
