"""Channel spaces, parametrized over every registered family (like timm's model tests)."""
import json
import random

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision
from click.testing import CliRunner
from onnx import numpy_helper, shape_inference

from prune_lut.cli import main
from prune_lut.errors import UserError
from prune_lut.pruning.arch import arch_from_dict, arch_to_dict, load_arch, save_arch
from prune_lut.pruning.export import load_torch, onnx_model, save_torch
from prune_lut.pruning.net import build_net
from prune_lut.pruning.space import FAMILIES, PAPER_GRID, get_space, grid_widths

from conftest import settle_bn

# families torchvision lacks: (params, M MACs) from their paper (MobileNetV1: 4.2 M params, 569 M MACs)
# or reference code (MetaPruning's MobileNetV2: 569.5 M MACs; it states no parameter count)
PUBLISHED = {"mobilenet_v1": (4_231_976, 569), "mobilenet_v2_metapruning": (None, 569.5)}


def small(family: str, **kw):
    return get_space(family, resolution=32, small_input=True, num_classes=10, **kw)


def test_paper_grid():
    assert len(PAPER_GRID) == 31 and PAPER_GRID[0] == 0.10 and PAPER_GRID[1] == 0.13 and PAPER_GRID[-1] == 1.0


def test_full_width_matches_reference(family):
    sp = get_space(family)
    ref = FAMILIES[family].reference
    if ref is None:  # torchvision has none: the published figures
        params, mmacs = PUBLISHED[family]
        assert params is None or sp.params(sp.full()) == params
        assert abs(sp.macs(sp.full()) / 1e6 - mmacs) < 1
        return
    tv = getattr(torchvision.models, ref)(weights=None)
    net = build_net(sp, sp.full())
    assert sp.params(sp.full()) == sum(p.numel() for p in tv.parameters())
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in tv.parameters())
    # every conv layer of torchvision's net, in order, has the same shape as ours
    tv_convs = [tuple(m.weight.shape) for m in tv.modules() if isinstance(m, torch.nn.Conv2d)]
    ours = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted(tv_convs) == sorted(ours) and len(tv_convs) == len(ours)


@pytest.mark.parametrize("multiple", [1, 8])
def test_random_arch_forward_backward(family, multiple):
    sp = small(family, multiple=multiple)
    arch = sp.random(random.Random(3))
    net = build_net(sp, arch)
    x = torch.randn(2, 3, 32, 32)
    y = net(x)
    assert y.shape == (2, 10)
    y.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    # physically smaller tensors: every conv has exactly the arch's widths
    assert sum(p.numel() for p in net.parameters()) == sp.params(arch)
    if multiple > 1:
        assert all(w % multiple == 0 or w == sp.genes[g].base for g, w in arch.items())


def _macs_by_hooks(net, x) -> int:
    """An independent count: shapes of the tensors a real forward pass produces."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += m.in_features * m.out_features
    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        net(x)
    for h in hs:
        h.remove()
    return total


def _macs_from_onnx(model: onnx.ModelProto) -> int:
    """Another independent count: ONNX shape inference over the exported graph."""
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.value_info}
    inits = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    total = 0
    for n in model.graph.node:
        if n.op_type == "Conv":
            o = shapes[n.output[0]]
            w = inits[n.input[1]]
            total += o[1] * o[2] * o[3] * w[1] * w[2] * w[3]
        elif n.op_type == "Gemm":
            w = inits[n.input[1]]
            total += w[0] * w[1]
    return total


def test_macs_match_independent_counts(family):
    sp = get_space(family, resolution=64)
    arch = sp.random(random.Random(5))
    net = build_net(sp, arch).eval()
    x = torch.randn(1, 3, 64, 64)
    assert _macs_by_hooks(net, x) == sp.macs(arch)
    assert _macs_from_onnx(onnx_model(sp, net, batch=1)) == sp.macs(arch)


def test_uniform_macs_monotonic(family):
    sp = small(family)
    macs = [sp.macs(sp.uniform(r)) for r in PAPER_GRID]
    assert all(a <= b for a, b in zip(macs, macs[1:])) and macs[0] < macs[-1]
    assert sp.uniform(1.0) == sp.full()


@pytest.mark.parametrize("key_names", [False, True])
def test_onnx_matches_pytorch(family, key_names):
    sp = small(family, multiple=8)
    net = build_net(sp, sp.random(random.Random(7)))
    x = torch.randn(4, 3, 32, 32)
    settle_bn(net, x)
    sess = ort.InferenceSession(onnx_model(sp, net, key_names=key_names).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = net(x).numpy()
    out = sess.run(None, {"input": x.numpy()})[0]
    # float32 rounding grows with depth: ResNet-101's 104 layers drift to ~1.2e-4 (folded BN, other kernels)
    assert np.abs(out - ref).max() < (3e-4 if family == "resnet101" else 1e-4)


def test_key_names_map_to_layer_specs(family):
    sp = small(family)
    arch = sp.random(random.Random(2))
    model = onnx_model(sp, build_net(sp, arch).eval(), key_names=True)
    keys = [n.name.split("#")[0] for n in model.graph.node if "/" not in n.name]
    assert keys == [s.key for s in sp.layer_specs(arch)]


def test_layer_specs_chain(family):
    """Each operator's input size and channels follow from the one before (on the main path)."""
    sp = get_space(family, resolution=224)
    specs = sp.layer_specs(sp.random(random.Random(1)))
    assert specs[0].size == 224 and specs[0].cin == 3 and specs[-1].op == "linear" and specs[-1].cout == 1000
    assert specs[-2].op == "gap" and specs[-2].size == 7


def test_arch_json_roundtrip(family, tmp_path):
    sp = small(family, multiple=8)
    arch = sp.random(random.Random(4))
    save_arch(tmp_path / "a.json", sp, arch)
    sp2, arch2 = load_arch(tmp_path / "a.json")
    assert arch2 == arch and sp2.hash == sp.hash and list(arch2) == sp.gene_names


def test_torch_export_roundtrip(tmp_path):
    sp = small("mobilenet_v2")
    net = build_net(sp, sp.random(random.Random(0))).eval()
    save_torch(tmp_path / "n.pt", sp, net)
    sp2, net2 = load_torch(tmp_path / "n.pt")
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(net(x), net2.eval()(x))


BAD = [
    (lambda d: d.update(family="vgg16"), "unknown family 'vgg16'"),
    (lambda d: d["genes"].pop("stage2"), "gene 'stage2' is missing"),
    (lambda d: d["genes"].update(bogus=3), "unknown gene 'bogus'"),
    (lambda d: d["genes"].update(stage2=23), "gene 'stage2': width 23 is not on the grid"),
    (lambda d: d["genes"].update(stage2=48), "gene 'stage2': width 48 exceeds the base width 24"),
    (lambda d: d["genes"].update(stage2="x"), r"genes.stage2: expected an integer, found 'x'"),
    (lambda d: d["genes"].update(stage2=True), r"genes.stage2: expected an integer, found true"),
    (lambda d: d.update(resolution="8"), r"resolution: expected an integer, found '8'"),
    (lambda d: d.update(multiple=100000), r"multiple: expected a number <= 256, found 100000"),
    (lambda d: d.update(extra=1), r"extra: unknown field"),
]


@pytest.mark.parametrize("mutate,message", BAD)
def test_bad_arch_rejected(tmp_path, mutate, message):
    sp = small("mobilenet_v2", multiple=8)
    d = arch_to_dict(sp, sp.full())
    mutate(d)
    with pytest.raises(UserError, match=message):
        arch_from_dict(d)
    (tmp_path / "bad.json").write_text(json.dumps(d))
    r = CliRunner().invoke(main, ["export", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.onnx")])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_damaged_arch_file(tmp_path):
    (tmp_path / "a.json").write_text("{not json")
    r = CliRunner().invoke(main, ["export", str(tmp_path / "a.json"), "--out", str(tmp_path / "x.onnx")])
    assert r.exit_code == 2 and "not valid JSON" in r.output


def test_resolution_too_small():
    with pytest.raises(UserError, match="too small"):
        get_space("resnet18", resolution=16)
    get_space("resnet18", resolution=8, small_input=True)


def test_grid_rounding():
    assert grid_widths(24, PAPER_GRID, 16) == (16, 24)
    assert grid_widths(96, PAPER_GRID, 8) == tuple(range(8, 97, 8))
    assert len(grid_widths(1280, PAPER_GRID, 1)) == 31


def test_cli_space_json(family):
    r = CliRunner().invoke(main, ["space", family, "--json", "--resolution", "64"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    sp = get_space(family, resolution=64)
    assert [g["name"] for g in d["genes"]] == sp.gene_names
    assert d["members"]["full"]["params"] == sp.params(sp.full())
    assert d["members"]["smallest"]["macs"] < d["members"]["full"]["macs"]


@pytest.mark.parametrize("args", [["--uniform", "0.5"], ["--random", "--seed", "3"]])
def test_cli_export_onnx_runs(tmp_path, args):
    out, arch = tmp_path / "m.onnx", tmp_path / "a.json"
    r = CliRunner().invoke(main, ["export", "--family", "resnet18", "--small-input", "--resolution", "32", *args,
                                  "--out", str(out), "--arch-out", str(arch)])
    assert r.exit_code == 0, r.output
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"input": np.random.rand(2, 3, 32, 32).astype(np.float32)})[0]
    assert y.shape == (2, 1000)
    sp, a = load_arch(arch)
    assert sp.family == "resnet18"
