"""Reading ONNX CNNs as table layers: torchvision's exporter and ours give our space's specs;
unsupported operators are listed, never dropped; bad files are refused in one line."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from prune_lut.errors import UserError
from prune_lut.latency.onnx_specs import FREE, read_onnx_specs
from prune_lut.pruning.export import onnx_model
from prune_lut.pruning.net import build_net

from onnx_models import export_torch, matching_arch, torchvision_net

RES = 64
NETS = [("mobilenet_v2", {"width_mult": 0.5}), ("mobilenet_v2", {"width_mult": 0.75}),
        ("mobilenet_v2", {"width_mult": 1.0}), ("resnet18", {})]


@pytest.mark.parametrize("family, kw", NETS, ids=lambda v: str(v.get("width_mult", "")) if isinstance(v, dict) else v)
def test_torchvision_export_reads_as_our_space(tmp_path, family, kw):
    net = torchvision_net(family, **kw)
    space, arch = matching_arch(family, net, RES)
    want = space.layer_specs(arch)
    # torch's exporter, BatchNormalization nodes kept: ORT folds them, so must the reader
    path = export_torch(net, tmp_path / "tv.onnx", RES)
    graph = onnx.load(str(path)).graph
    n_bn = sum(n.op_type == "BatchNormalization" for n in graph.node)
    assert n_bn == sum(s.op == "conv" for s in want)
    got = read_onnx_specs(path)
    assert got.specs == want
    assert got.conv_nodes == got.convs_mapped == n_bn and got.unsupported == []
    assert all(any("BatchNormalization" in x for x in layer.nodes) for layer in got.layers if layer.spec.op == "conv")
    # our exporter (BatchNorm already folded), with a fixed and with a symbolic batch
    ours = build_net(space, arch).eval()
    for batch in (1, "batch"):
        assert read_onnx_specs(onnx_model(space, ours, batch=batch).SerializeToString()).specs == want


class Odd(nn.Module):
    """A CNN with what tables cannot key: squeeze-excite (Sigmoid, Mul), HardSwish, a dilated conv,
    an upsample (Resize) and a Concat, beside ordinary conv-bn-relu layers."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1), nn.Sigmoid())
        self.dilated = nn.Conv2d(16, 16, 3, 1, padding=2, dilation=2)
        self.down = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1), nn.Hardswish())
        self.up = nn.Upsample(scale_factor=2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x * self.se(x)
        y = self.up(self.down(self.dilated(x)))
        z = torch.cat([x, y], 1)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(z, 1), 1))


def test_unsupported_operators_are_listed_not_dropped(tmp_path):
    path = export_torch(Odd().eval(), tmp_path / "odd.onnx", 32)
    got = read_onnx_specs(path)
    kinds = {(u.op_type, u.reason.split(" ")[0]) for u in got.unsupported}
    assert {"Sigmoid", "Mul", "HardSwish", "Resize", "Concat"} <= {u.op_type for u in got.unsupported}
    assert ("Conv", "dilation") in kinds
    # the rest is read: stem conv (bn, relu fused), SE pool and its two 1x1 convs, the strided conv, head
    assert [s.key for s in got.specs] == [
        "conv-s32-c3x16-k3-st2-g1-relu", "gap-s16-c16x16-k1-st1-g1-none", "conv-s1-c16x4-k1-st1-g1-relu",
        "conv-s1-c4x16-k1-st1-g1-none", "conv-s16-c16x16-k3-st2-g1-none", "gap-s16-c32x32-k1-st1-g1-none",
        "linear-s1-c32x10-k1-st1-g1-none"]
    assert got.conv_nodes == 5 and got.convs_mapped == 4
    # every node computed from the image is a layer's, an unsupported one's, or free plumbing
    graph = onnx.load(str(path)).graph
    data, on_image = {graph.input[0].name}, set()
    for n in graph.node:
        if n.op_type != "Shape" and any(t in data for t in n.input):
            data.update(n.output)
            if n.op_type not in FREE:
                on_image.add(n.name)
    covered = {x for layer in got.layers for x in layer.nodes} | {x for u in got.unsupported for x in (u.node, *u.nodes)}
    assert on_image and on_image <= covered, on_image - covered
    d = got.to_dict()
    assert d["n_unsupported"] == len(got.unsupported) and d["unsupported"][0]["node"] == got.unsupported[0].node


def _one_line(excinfo, *parts: str) -> None:
    msg = str(excinfo.value)
    assert "\n" not in msg and all(p in msg for p in parts), msg


def test_refusals_name_the_file_and_the_fix(tmp_path):
    txt = tmp_path / "notes.onnx"
    txt.write_text("this is not a model\n" * 20)
    with pytest.raises(UserError) as e:
        read_onnx_specs(txt)
    _one_line(e, str(txt), "not an ONNX model", "export")
    mlp = export_torch(nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).eval(), tmp_path / "mlp.onnx", 8)
    with pytest.raises(UserError) as e:
        read_onnx_specs(mlp)
    _one_line(e, str(mlp), "no Conv node", "CNN")
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
    b2 = export_torch(conv, tmp_path / "b2.onnx", 8, batch=2)
    with pytest.raises(UserError) as e:
        read_onnx_specs(b2)
    _one_line(e, str(b2), "batch 2", "batch-1")
    with pytest.raises(UserError) as e:
        read_onnx_specs(tmp_path / "absent.onnx")
    _one_line(e, "absent.onnx", "no such ONNX file")


def _graph(nodes, inits: dict, shape=(1, 8, 16, 16), opset: int = 17) -> bytes:
    """A hand-written ONNX model (input ``x``, output ``y``): variants torch's exporter does not write."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.asarray(v, np.float32 if k != "axes" else np.int64), k)
                               for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]).SerializeToString()


def _conv(out: str = "c", pads=(1, 1, 1, 1), **kw):
    from onnx import helper

    return helper.make_node("Conv", ["x", "w"], [out], name="conv", kernel_shape=[3, 3], pads=list(pads), **kw)


W = {"w": np.ones((8, 8, 3, 3)), "fc": np.ones((8, 10)), "b": np.zeros(10)}


def test_other_spellings_of_the_same_layers():
    from onnx import helper

    # Clip bounds as inputs, ReduceMean over H and W, MatMul + Add of a constant bias
    m = _graph([_conv(), helper.make_node("Clip", ["c", "lo", "hi"], ["a"], name="clip"),
                helper.make_node("ReduceMean", ["a"], ["p"], name="mean", axes=[2, 3], keepdims=0),
                helper.make_node("MatMul", ["p", "fc"], ["mm"], name="mm"),
                helper.make_node("Add", ["mm", "b"], ["y"], name="bias")], {**W, "lo": 0.0, "hi": 6.0})
    got = read_onnx_specs(m)
    assert [s.key for s in got.specs] == ["conv-s16-c8x8-k3-st1-g1-relu6", "gap-s16-c8x8-k1-st1-g1-none",
                                          "linear-s1-c8x10-k1-st1-g1-none"]
    assert got.layers[0].nodes == ("conv", "clip") and got.layers[2].nodes == ("mm", "bias") and not got.unsupported
    # opset 10: Clip bounds as attributes; an AveragePool over the whole map is a global pool
    m = _graph([_conv(), helper.make_node("Clip", ["c"], ["a"], name="clip", min=0.0, max=6.0),
                helper.make_node("AveragePool", ["a"], ["p"], name="avg", kernel_shape=[16, 16]),
                helper.make_node("Flatten", ["p"], ["f"], name="flat"),
                helper.make_node("Gemm", ["f", "fc", "b"], ["y"], name="fc")], W, opset=10)
    assert [s.key for s in read_onnx_specs(m).specs] == [
        "conv-s16-c8x8-k3-st1-g1-relu6", "gap-s16-c8x8-k1-st1-g1-none", "linear-s1-c8x10-k1-st1-g1-none"]
    # opset 18: ReduceMean's axes is an input
    m = _graph([_conv(), helper.make_node("ReduceMean", ["c", "axes"], ["y"], name="mean")], {**W, "axes": [2, 3]},
               opset=18)
    assert [s.op for s in read_onnx_specs(m).specs] == ["conv", "gap"]


@pytest.mark.parametrize("conv, shape, reason", [
    (dict(pads=(0, 0, 0, 0)), (1, 8, 16, 16), "padding [0, 0, 0, 0] is not 'same'"),
    (dict(pads=(0, 0, 1, 1)), (1, 8, 16, 16), "is not 'same'"),
    ({}, (1, 8, 16, 12), "non-square input 16x12"),
    (dict(strides=[1, 2]), (1, 8, 16, 16), "non-square stride"),
    (dict(dilations=[2, 2], pads=(2, 2, 2, 2)), (1, 8, 16, 16), "dilation [2, 2]"),
])
def test_convs_a_table_cannot_key_are_listed(conv, shape, reason):
    from onnx import helper

    got = read_onnx_specs(_graph([_conv(**conv), helper.make_node("Relu", ["c"], ["y"], name="relu")], W, shape))
    assert got.conv_nodes == 1 and got.convs_mapped == 0 and not got.layers
    (u,) = got.unsupported
    assert u.node == "conv" and u.op_type == "Conv" and reason in u.reason and u.nodes == ("conv", "relu")
