"""An ONNX graph as the layer reader needs it: loaded and checked, its image input, constants folded,
shapes inferred, and each tensor's producer and consumers (``latency/onnx_specs.py`` reads it)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import UserError

FIX = "export the network to ONNX (torch.onnx.export, or `prune-lut export`) and give that file"
FREE = frozenset({"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Dropout", "Identity"})
Shape = tuple  # of int | None (None: unknown or symbolic)
FOLD_MAX = 4096  # elements: constant-only nodes this small are evaluated (shape math, not weights)


def load_model(model, source: str) -> onnx.ModelProto:
    """An ONNX model from a path, bytes or a ModelProto; UserError for anything that is not one."""
    if isinstance(model, onnx.ModelProto):
        return model
    try:
        if isinstance(model, (bytes, bytearray)):
            m = onnx.load_from_string(bytes(model))
        else:
            p = Path(model)
            if not p.is_file():
                raise UserError(f"{p}: no such ONNX file; {FIX}")
            m = onnx.load(str(p), load_external_data=False)  # weights' shapes are in their dims
    except UserError:
        raise
    except Exception as e:  # protobuf raises DecodeError, RuntimeWarning-like errors, ValueError ...
        raise UserError(f"{source}: not an ONNX model ({type(e).__name__}); {FIX}") from None
    if not m.graph.node or not m.opset_import:
        raise UserError(f"{source}: not an ONNX model (no graph); {FIX}")
    return m


def _dims(t: onnx.TypeProto) -> Shape | None:
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.tensor_type.shape.dim)


def image_input(m: onnx.ModelProto, source: str) -> tuple[str, Shape]:
    """The one NCHW image input (batch 1 or symbolic, which is read as 1); UserError otherwise."""
    inits = {i.name for i in m.graph.initializer}
    ins = [v for v in m.graph.input if v.name not in inits]
    if len(ins) != 1:
        raise UserError(f"{source}: {len(ins)} graph inputs; prune-lut reads CNNs with one NCHW image input: "
                        "export the network with a single input")
    shape = _dims(ins[0].type)
    if shape is None or len(shape) != 4:
        raise UserError(f"{source}: input {ins[0].name!r} has shape {shape}, not NCHW; export with a (1, C, H, W) input")
    batch = ins[0].type.tensor_type.shape.dim[0]
    if batch.HasField("dim_value") and batch.dim_value != 1:
        raise UserError(f"{source}: batch {batch.dim_value}; tables time batch 1: export with a batch-1 input")
    if shape[2] is None or shape[3] is None:
        raise UserError(f"{source}: input height/width are not fixed; export at a fixed resolution")
    return ins[0].name, shape


def _light(m: onnx.ModelProto, image: str, shape: Shape, folded: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The graph as shape inference should see it: the image input pinned to batch 1, tensors
    computed from constants alone replaced by their ``folded`` values (as ORT folds them: Resize
    scales, Reshape targets), and large initializers declared as inputs instead (inference then
    neither copies nor serializes the weights, which keeps a ResNet-101 well under a second)."""
    g = m.graph
    elem = next(v.type.tensor_type.elem_type for v in g.input if v.name == image)
    inputs = [onnx.helper.make_tensor_value_info(image, elem, [1, *shape[1:]])]
    inputs += [v for v in g.input if v.name != image]
    declared = {v.name for v in inputs}
    small = [numpy_helper.from_array(np.asarray(v), k) for k, v in folded.items()]
    for t in g.initializer:
        if math.prod(t.dims) <= 64:  # shape targets, Clip bounds: inference reads their values
            small.append(t)
        elif t.name not in declared:
            inputs.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    nodes = [n for n in g.node if not (n.output and all(o in folded for o in n.output))]
    graph = onnx.helper.make_graph(nodes, g.name, inputs, g.output, small, value_info=g.value_info)
    light = onnx.helper.make_model(graph, opset_imports=m.opset_import, ir_version=m.ir_version)
    light.functions.extend(m.functions)
    return light


def _shapes(m: onnx.ModelProto) -> dict[str, Shape]:
    """Every tensor's shape ONNX shape inference knows (a model it cannot infer keeps what it declares)."""
    try:
        m = onnx.shape_inference.infer_shapes(m, data_prop=True)
    except Exception:  # a graph inference rejects: the declared shapes only (what needs more is unsupported)
        pass
    out: dict[str, Shape] = {}
    for v in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        d = _dims(v.type)
        if d is not None:
            out[v.name] = d
    for t in m.graph.initializer:
        out[t.name] = tuple(int(x) for x in t.dims)
    return out


# ---- the graph as a walker sees it ---------------------------------------------------------------
class Graph:
    """Nodes, consumers, constants and shapes of one model.

    Shapes come from ONNX shape inference (with data propagation, so Shape -> Reshape chains
    resolve) after the nodes computed from constants alone are evaluated here: inference cannot
    see through those (torch's exporter with constant folding off writes Resize scales as a Concat
    of Constants, which left every shape after the Resize unknown). A shape still unknown makes
    the operator that needs it unsupported, with that reason: never a guess.
    """

    def __init__(self, m: onnx.ModelProto, input_name: str, input_shape: Shape):
        self.nodes = list(m.graph.node)
        self.names = [n.name or f"{n.op_type}_{i}" for i, n in enumerate(self.nodes)]
        self.outputs = {o.name for o in m.graph.output}
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)
        self.inits = {t.name: t for t in m.graph.initializer}
        self.const_nodes = {n.output[0]: n for n in self.nodes if n.op_type == "Constant" and n.output}
        self.alias = {n.output[0]: n.input[0] for n in self.nodes if n.op_type == "Identity" and n.input}
        self.data = self._data_tensors(input_name)
        self.folded: dict[str, np.ndarray] = {}
        self._fold()
        self.shapes = _shapes(_light(m, input_name, input_shape, self.folded))

    def _data_tensors(self, input_name: str) -> set[str]:
        """Tensors whose values depend on the image (Shape/Size outputs do not: they are metadata)."""
        data = {input_name}
        for n in self.nodes:
            if n.op_type not in ("Shape", "Size") and any(t in data for t in n.input):
                data.update(n.output)
        return data

    def _fold(self) -> None:
        """Evaluate the small nodes computed from constants alone (not from the image, nor from a
        Shape: data propagation infers those), so their values reach shape inference."""
        from onnx.reference import ReferenceEvaluator

        for n in self.nodes:
            if n.op_type in ("Constant", "Identity", "Shape", "Size") or not n.output \
                    or any(t in self.data for t in n.input):
                continue
            if sum(self._size(t) for t in n.input if t) > FOLD_MAX:
                continue
            args = {t: self.const(t) for t in n.input if t}
            if any(a is None for a in args.values()):
                continue
            try:
                self.folded.update(zip(n.output, ReferenceEvaluator(n).run(None, args)))
            except Exception:  # an op the reference cannot run alone: its outputs stay unknown
                continue

    def _resolve(self, name: str) -> str:
        for _ in range(8):  # Identity chains (torch's exporter aliases shared weights)
            if name not in self.alias:
                break
            name = self.alias[name]
        return name

    def _size(self, name: str) -> int:
        """Elements of a constant, read from its dims (a weight is not decoded just to be skipped)."""
        name = self._resolve(name)
        if name in self.inits:
            return math.prod(self.inits[name].dims)
        return int(np.asarray(self.folded[name]).size) if name in self.folded else 0

    def const(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor (initializer, Constant node, folded node, or an Identity of one)."""
        name = self._resolve(name)
        if name in self.folded:
            return np.asarray(self.folded[name])
        try:
            if name in self.inits:
                return numpy_helper.to_array(self.inits[name])
            if name in self.const_nodes:
                a = self.const_nodes[name].attribute[0]
                v = onnx.helper.get_attribute_value(a)
                return numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
        except Exception:  # external data not loaded, or an odd encoding: not a usable constant
            return None
        return None

    def shape(self, name: str) -> Shape | None:
        return self.shapes.get(name)

    def sole_consumer(self, tensor: str) -> int | None:
        """The one node reading ``tensor`` (None when several do, or it is a graph output: ORT fuses neither)."""
        c = self.consumers.get(tensor, [])
        return c[0] if len(c) == 1 and tensor not in self.outputs else None


# ---- attributes ----------------------------------------------------------------------------------
def attr(n: onnx.NodeProto, name: str):
    for a in n.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def attr_ints(n: onnx.NodeProto, name: str) -> list[int] | None:
    v = attr(n, name)
    return None if v is None else [int(x) for x in v]


def attr_int(n: onnx.NodeProto, name: str, default: int) -> int:
    v = attr(n, name)
    return default if v is None else int(v)


def pads_of(n: onnx.NodeProto) -> list[int] | str:
    """Explicit pads (begin h, w, end h, w), or the auto_pad mode when one is set."""
    auto = attr(n, "auto_pad")
    auto = auto.decode() if isinstance(auto, bytes) else (auto or "NOTSET")
    if auto != "NOTSET":
        return auto
    return attr_ints(n, "pads") or [0, 0, 0, 0]
