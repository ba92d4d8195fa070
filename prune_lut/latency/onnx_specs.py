"""Read any ONNX CNN as the layer specs a lookup table is keyed on, fused as ONNX Runtime runs it.

ORT folds a BatchNormalization into the Conv before it, fuses a following Relu or Clip(0, 6)
into that Conv (or into a residual Add), and fuses a Conv whose only consumer is an Add into
that Add; a table keys exactly those fused operators (:class:`LayerSpec`). This module walks a
graph the same way and returns, in execution order, one :class:`OnnxLayer` per spec with the
node names it came from, and one :class:`Unsupported` per operator no key can express (never
dropped silently: a prediction that ignored them would be too fast). Shape plumbing ORT runs for
free (Flatten, Reshape, Squeeze, Unsqueeze, Dropout, Identity, and anything computed only from
constants or shapes) is skipped. Family-agnostic: nothing here knows prune-lut's spaces.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import onnx

from ..errors import UserError
from .onnx_graph import FREE, Graph, Shape, attr, attr_int, attr_ints, image_input, load_model, pads_of
from .spec import LayerSpec

@dataclass(frozen=True)
class OnnxLayer:
    """One table operator and the ONNX nodes fused into it (conv, its BatchNorm, its activation ...)."""

    spec: LayerSpec
    nodes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"key": self.spec.key, "op": self.spec.op, "nodes": list(self.nodes)}


@dataclass(frozen=True)
class Unsupported:
    """An operator no table key expresses: its node name, op type, why, and the nodes fused with it."""

    node: str
    op_type: str
    reason: str
    nodes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"node": self.node, "op_type": self.op_type, "reason": self.reason, "nodes": list(self.nodes)}


@dataclass
class OnnxSpecs:
    """What :func:`read_onnx_specs` found: the layers in execution order, the operators left out,
    and how many of the graph's Conv nodes became specs."""

    source: str
    input_size: int | None
    layers: list[OnnxLayer]
    unsupported: list[Unsupported]
    conv_nodes: int
    convs_mapped: int

    @property
    def specs(self) -> list[LayerSpec]:
        return [layer.spec for layer in self.layers]

    def to_dict(self) -> dict:
        return {"source": self.source, "input_size": self.input_size, "conv_nodes": self.conv_nodes,
                "convs_mapped": self.convs_mapped, "layers": [x.to_dict() for x in self.layers],
                "unsupported": [u.to_dict() for u in self.unsupported], "n_unsupported": len(self.unsupported)}


# ---- loading -----------------------------------------------------------------------------------


def _pool_out(hw, k, s, pads, d, ceil: int) -> tuple:
    """Output H, W of a conv or pool (None where the input is unknown)."""
    out = []
    for i, x in enumerate(hw):
        if x is None:
            out.append(None)
        elif isinstance(pads, str):
            out.append(-(-x // s[i]) if pads.startswith("SAME") else (x - d[i] * (k[i] - 1) - 1) // s[i] + 1)
        else:
            span = x + pads[i] + pads[i + 2] - d[i] * (k[i] - 1) - 1
            out.append((-(-span // s[i]) if ceil else span // s[i]) + 1)
    return tuple(out)


def _window(n: onnx.NodeProto, x: Shape, k: list[int]) -> str | None:
    """Why a conv/pool window is not the table's (square, 'same' k//2 padding, no dilation), or None."""
    s = attr_ints(n, "strides") or [1, 1]
    d = attr_ints(n, "dilations") or [1, 1]
    pads = pads_of(n)
    if len(k) != 2:
        return f"{len(k)}-d window (tables key 2-d ops)"
    if any(v != 1 for v in d):
        return f"dilation {d}"
    if k[0] != k[1]:
        return f"non-square kernel {k}"
    if s[0] != s[1]:
        return f"non-square stride {s}"
    if x[2] != x[3]:
        return f"non-square input {x[2]}x{x[3]}"
    if attr_int(n, "ceil_mode", 0) and _pool_out(x[2:], k, s, pads, d, 1) != _pool_out(x[2:], k, s, pads, d, 0):
        return "ceil_mode changes the output size"
    same = [k[0] // 2] * 4
    if pads != same and not (isinstance(pads, str) and _pool_out(x[2:], k, s, pads, d, 0) ==
                             _pool_out(x[2:], k, s, same, d, 0)):
        return f"padding {pads} is not 'same' ({k[0] // 2} on every side)"
    return None


# ---- the walk ------------------------------------------------------------------------------------
class _Reader:
    def __init__(self, g: Graph):
        self.g = g
        self.claimed: set[int] = set()
        self.layers: list[OnnxLayer] = []
        self.unsupported: list[Unsupported] = []
        self.convs_mapped = 0

    # fusion look-ahead ------------------------------------------------------------------------
    def activation(self, i: int) -> str | None:
        """'relu' / 'relu6' when node ``i`` is an activation ORT fuses into the op before it."""
        n = self.g.nodes[i]
        if n.op_type == "Relu":
            return "relu"
        if n.op_type != "Clip":
            return None
        if len(n.input) > 1:  # opset >= 11: min and max are inputs
            lo = self.g.const(n.input[1]) if n.input[1] else None
            hi = self.g.const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
            if (n.input[1] and lo is None) or (len(n.input) > 2 and n.input[2] and hi is None):
                return None  # bounds computed at run time
        else:
            lo, hi = attr(n, "min"), attr(n, "max")
        lo = -math.inf if lo is None else float(np.asarray(lo).reshape(-1)[0])
        hi = math.inf if hi is None else float(np.asarray(hi).reshape(-1)[0])
        if lo == 0 and hi == 6:
            return "relu6"
        if lo == 0 and hi == math.inf:
            return "relu"
        return None

    def fuse_act(self, tensor: str, nodes: list[str]) -> tuple[str, str]:
        """Absorb the activation that alone reads ``tensor``: (its output tensor, act name)."""
        j = self.g.sole_consumer(tensor)
        if j is not None and j not in self.claimed and self.g.nodes[j].input[0] == tensor:
            act = self.activation(j)
            if act is not None:
                self.claimed.add(j)
                nodes.append(self.g.names[j])
                return self.g.nodes[j].output[0], act
        return tensor, "none"

    def feature_add(self, i: int) -> str | None:
        """Why node ``i`` (an Add) is not a residual sum of two equal feature maps, or None when it is."""
        n = self.g.nodes[i]
        if len(n.input) != 2 or not all(t in self.g.data for t in n.input):
            return "Add with a constant (no table key: only residual sums of two feature maps)"
        a, b = (self.g.shape(t) for t in n.input)
        if a is None or b is None or None in a[1:] or None in b[1:]:
            return "Add of tensors whose shapes are unknown"
        if a != b or len(a) != 4:
            return f"broadcasting or non-NCHW Add ({list(a)} + {list(b)})"
        if a[2] != a[3]:
            return f"non-square Add {a[2]}x{a[3]}"
        return None

    # operators --------------------------------------------------------------------------------
    def conv(self, i: int) -> None:
        g, n = self.g, self.g.nodes[i]
        nodes = [g.names[i]]
        out = n.output[0]
        j = g.sole_consumer(out)
        if j is not None and g.nodes[j].op_type == "BatchNormalization" and g.nodes[j].input[0] == out \
                and not any(t in g.data for t in g.nodes[j].input[1:]):
            self.claimed.add(j)
            nodes.append(g.names[j])
            out = g.nodes[j].output[0]
        out, act = self.fuse_act(out, nodes)
        j = g.sole_consumer(out)
        residual = j is not None and g.nodes[j].op_type == "Add" and self.feature_add(j) is None
        x, w = g.shape(n.input[0]), g.shape(n.input[1]) if len(n.input) > 1 else None
        why = None
        if len(n.input) < 2 or n.input[1] in g.data:
            why = "weights computed at run time"
        elif x is None or w is None or len(x) != 4 or None in x[1:] or len(w) != 4:
            why = "input or weight shape unknown"
        else:
            why = _window(n, x, attr_ints(n, "kernel_shape") or list(w[2:]))
        if why is not None:
            self.unsupported.append(Unsupported(g.names[i], "Conv", why, tuple(nodes)))
            return
        groups = attr_int(n, "group", 1)
        spec = LayerSpec("conv", x[2], x[1], w[0], w[2], (attr_ints(n, "strides") or [1, 1])[0], groups, act, residual)
        self.layers.append(OnnxLayer(spec, tuple(nodes)))
        self.convs_mapped += 1

    def add(self, i: int) -> None:
        why = self.feature_add(i)
        if why is not None:
            self.unsupported.append(Unsupported(self.g.names[i], "Add", why))
            return
        nodes = [self.g.names[i]]
        _, act = self.fuse_act(self.g.nodes[i].output[0], nodes)
        x = self.g.shape(self.g.nodes[i].input[0])
        self.layers.append(OnnxLayer(LayerSpec("add", x[2], x[1], x[1], act=act), tuple(nodes)))

    def pool(self, i: int) -> None:
        """MaxPool -> ``maxpool``; GlobalAveragePool, a ReduceMean over H and W, or an AveragePool
        covering the whole map -> ``gap``."""
        g, n = self.g, self.g.nodes[i]
        x = g.shape(n.input[0])
        if x is None or len(x) != 4 or None in x[1:]:
            return self.refuse(i, "input shape unknown or not NCHW")
        if n.op_type == "MaxPool":
            k = attr_ints(n, "kernel_shape") or []
            why = _window(n, x, k) or ("indices output" if len(n.output) > 1 and n.output[1] else None)
            if why:
                return self.refuse(i, why)
            s = (attr_ints(n, "strides") or [1, 1])[0]
            return self.emit(i, LayerSpec("maxpool", x[2], x[1], x[1], k[0], s))
        if n.op_type == "ReduceMean":
            axes = attr_ints(n, "axes")
            if axes is None and len(n.input) > 1:  # opset 18: axes is an input
                v = g.const(n.input[1])
                axes = None if v is None else [int(a) for a in np.asarray(v).reshape(-1)]
            if axes is None or sorted(a % 4 for a in axes) != [2, 3]:
                return self.refuse(i, f"ReduceMean over axes {axes} (a table's gap averages H and W)")
        elif n.op_type == "AveragePool":
            k = attr_ints(n, "kernel_shape") or []
            if k != [x[2], x[3]] or pads_of(n) not in ([0, 0, 0, 0], "VALID"):
                return self.refuse(i, f"AveragePool {k} over a {x[2]}x{x[3]} map (only a global average has a key)")
        if x[2] != x[3]:
            return self.refuse(i, f"non-square input {x[2]}x{x[3]}")
        self.emit(i, LayerSpec("gap", x[2], x[1], x[1]))

    def linear(self, i: int) -> None:
        """Gemm, or MatMul (+ an Add of a constant bias), by a constant weight -> ``linear``."""
        g, n = self.g, self.g.nodes[i]
        nodes = [g.names[i]]
        if len(n.input) < 2 or n.input[1] in g.data:
            return self.refuse(i, "product of two activations (attention-like; no table key)")
        w = g.shape(n.input[1])
        x = g.shape(n.input[0])
        if w is None or len(w) != 2 or None in w:
            return self.refuse(i, f"weight of shape {w} (a linear layer's is 2-d)")
        if n.op_type == "Gemm":
            if attr_int(n, "transA", 0):
                return self.refuse(i, "Gemm with transA")
            cout, cin = w if attr_int(n, "transB", 0) else w[::-1]
        else:
            cin, cout = w
        if x is None or None in x or math.prod(x[:-1]) != 1:
            return self.refuse(i, f"input of shape {x} (a table's linear takes one feature vector)")
        out = n.output[0]
        j = g.sole_consumer(out)
        if n.op_type == "MatMul" and j is not None and g.nodes[j].op_type == "Add":
            other = [t for t in g.nodes[j].input if t != out]
            if len(other) == 1 and other[0] not in g.data:
                self.claimed.add(j)
                nodes.append(g.names[j])
                out = g.nodes[j].output[0]
        _, act = self.fuse_act(out, nodes)
        self.layers.append(OnnxLayer(LayerSpec("linear", 1, cin, cout, act=act), tuple(nodes)))

    def emit(self, i: int, spec: LayerSpec) -> None:
        self.layers.append(OnnxLayer(spec, (self.g.names[i],)))

    def refuse(self, i: int, reason: str) -> None:
        self.unsupported.append(Unsupported(self.g.names[i], self.g.nodes[i].op_type, reason))

    def read(self) -> None:
        ops = {"Conv": self.conv, "Add": self.add, "MaxPool": self.pool, "GlobalAveragePool": self.pool,
               "ReduceMean": self.pool, "AveragePool": self.pool, "Gemm": self.linear, "MatMul": self.linear}
        for i, n in enumerate(self.g.nodes):
            if i in self.claimed or n.op_type in FREE or n.op_type == "Constant":
                continue
            if not any(t in self.g.data for t in n.input) and n.op_type != "Conv":
                continue  # computed from constants and shapes only: ORT folds it
            if n.domain not in ("", "ai.onnx"):
                self.refuse(i, f"operator of domain {n.domain!r}")
            elif n.op_type in ops:
                ops[n.op_type](i)
            elif n.op_type in ("Relu", "Clip", "BatchNormalization"):
                self.refuse(i, f"{n.op_type} not fused into a Conv, Add or linear layer before it (ORT runs it alone)")
            else:
                self.refuse(i, f"no table key for {n.op_type}")


def read_onnx_specs(model: str | os.PathLike | bytes | onnx.ModelProto, source: str | None = None) -> OnnxSpecs:
    """The table layers of an ONNX CNN (opset 13+, one NCHW input of batch 1, square), in execution order.

    ``model``: a path, ONNX bytes or a ModelProto; ``source`` names it in messages (default: the path).
    Refuses (UserError, one line) a file that is not ONNX, a batch other than 1, or a graph with no Conv.
    """
    source = source or (str(model) if isinstance(model, (str, os.PathLike)) else "model")
    m = load_model(model, source)
    name, shape = image_input(m, source)
    n_conv = sum(n.op_type == "Conv" for n in m.graph.node)
    if not n_conv:
        raise UserError(f"{source}: no Conv node; lookup tables predict convolutional networks: "
                        "give the ONNX of a CNN")
    reader = _Reader(Graph(m, name, shape))
    reader.read()
    return OnnxSpecs(source, shape[2] if shape[2] == shape[3] else None, reader.layers, reader.unsupported,
                     n_conv, reader.convs_mapped)
