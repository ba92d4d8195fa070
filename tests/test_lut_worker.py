"""The measurement worker and the measure API: real ONNX Runtime / torch sessions, real subprocesses."""
import ast
import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prune_lut.devices import Device, get_device
from prune_lut.latency import worker
from prune_lut.latency.attribution import attribute
from prune_lut.latency.measure import measure, measure_many
from prune_lut.pruning.export import onnx_model
from prune_lut.pruning.net import build_net
from prune_lut.pruning.space import get_space

FAST = {"warmup": 2, "chunk": 3, "min_reps": 6, "max_reps": 12, "rel_tol": 0.05, "max_seconds": 5.0}
WORKER = Path(worker.__file__)


@pytest.fixture(scope="module")
def space():
    return get_space("mobilenet_v2", small_input=True, resolution=8, in_channels=1, num_classes=10, multiple=8)


@pytest.fixture(scope="module")
def model(space):
    return onnx_model(space, build_net(space, space.uniform(0.5)).eval(), batch=1, key_names=True).SerializeToString()


def test_worker_imports_only_stdlib_numpy_and_runtimes():
    allowed = set(sys.stdlib_module_names) | {"numpy", "onnxruntime", "torch", "onnx", "tensorrt", "cuda", "__future__"}
    tree = ast.parse(WORKER.read_text())
    mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree)), "relative import"
    assert mods <= allowed, mods - allowed


def test_measure_with_nodes_maps_every_position(space, model):
    r = worker.measure_model(model, "onnxruntime", {"threads": 1}, FAST, nodes=True)
    assert FAST["min_reps"] <= r["reps"] <= FAST["max_reps"] and r["median_ms"] > 0 and r["spread_ms"] >= 0
    assert r["node_reps"] >= FAST["min_reps"] and r["profiled_median_ms"] > 0
    per_pos, other = attribute(model, r["nodes"], r["node_spreads"])
    keys = [s.key for s in space.layer_specs(space.uniform(0.5))]
    assert [per_pos[p][0] for p in sorted(per_pos)] == keys
    convs = [ms for k, ms, _ in per_pos.values() if k.startswith("conv")]
    assert all(ms > 0 for ms in convs), "every conv must get its own profiled time"
    # nearly all node time maps to a key (what is left: layout reorders)
    assert other <= 0.3 * sum(r["nodes"].values())


def test_measure_api_interleaved(space, model):
    full = onnx_model(space, build_net(space, space.full()).eval(), batch=1)
    dev = Device(name="t", backend="onnxruntime", provider="CPUExecutionProvider", threads=1, protocol=FAST)
    a, b = measure_many(dev, [model, full])
    assert a.nodes is None and a.reps >= FAST["min_reps"] and b.median_ms > 0
    assert measure(dev, full).median_ms > 0


def test_torch_backend_cpu_per_node(space, model):
    dev = get_device("torch-cpu")
    m = measure(dev, model, nodes=True, protocol=FAST)
    assert m.median_ms > 0
    per_pos, other = attribute(model, m.nodes)
    assert other == 0 and len(per_pos) == len(space.layer_specs(space.uniform(0.5)))


def test_jsonlines_worker_runs_standalone(tmp_path, model):
    """A copy of worker.py alone in a directory serves the protocol (as on a board without prune-lut)."""
    shutil.copy(WORKER, tmp_path / "worker.py")
    reqs = [{"op": "hello", "id": 0},
            {"op": "measure", "id": 1, "model_b64": base64.b64encode(model).decode(), "backend": "onnxruntime",
             "options": {"threads": 1}, "protocol": FAST, "nodes": True},
            {"op": "measure", "id": 2, "backend": "onnxruntime"},
            {"op": "measure", "id": 3, "model_b64": base64.b64encode(b"junk").decode()},
            {"op": "bye", "id": 4}]
    p = subprocess.run([sys.executable, "worker.py"],
                       input="\n".join(map(json.dumps, reqs)) + "\nnot json\n", capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert p.returncode == 0, p.stderr
    replies = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(replies) == 5  # the line after bye is not read
    hello, meas, missing, junk, bye = replies
    assert hello["ok"] and hello["info"]["onnxruntime"] and hello["info"]["cores"] >= 1
    assert meas["id"] == 1 and meas["median_ms"] > 0 and len(meas["nodes"]) > 10
    assert missing == {"id": 2, "error": "request is missing field 'model_b64'"}
    assert junk["id"] == 3 and "error" in junk and "\n" not in junk["error"]
    assert bye["ok"]


def test_unknown_protocol_field_refused(model):
    r = worker.handle({"op": "measure", "id": 7, "model_b64": base64.b64encode(model).decode(),
                       "protocol": {"repeat": 3}})
    assert r["id"] == 7 and "unknown protocol field 'repeat'" in r["error"]


@pytest.mark.gpu
def test_torch_cuda_measures_on_gpu(space, model):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this host")
    dev = get_device("torch-cuda")
    m = measure(dev, model, nodes=True)
    assert m.median_ms > 0 and m.reps >= dev.protocol["min_reps"]
    per_pos, other = attribute(model, m.nodes)
    assert other == 0 and all(ms >= 0 for _, ms, _ in per_pos.values())
    graphs = Device(**{**dev.to_dict(), "name": "g", "cuda_graphs": True})
    assert measure(graphs, model).median_ms > 0


@pytest.mark.tensorrt
def test_tensorrt_engine_measures(model):
    pytest.importorskip("tensorrt", reason="TensorRT is not installed")
    pytest.importorskip("cuda", reason="cuda-python is not installed")
    m = measure(get_device("cuda"), model, nodes=True)
    assert m.median_ms > 0 and m.nodes
