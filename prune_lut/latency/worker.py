"""Self-contained latency measurement worker: one protocol, in-process or on a remote board.

This file imports only the Python standard library, numpy and the backend's own runtime
(onnxruntime; torch + onnx for the torch backend; tensorrt + cuda-python for TensorRT), never
``prune_lut``, so it can be copied to a board that has no prune-lut and run there as
``python3 worker.py`` (JSON lines on stdin/stdout). The local build imports the same functions,
so every number in a table comes from the same code.

Measurement protocol (``protocol`` dict, every field optional, defaults in ``PROTOCOL``):
  ``warmup`` runs are discarded; then runs are taken in rounds of ``chunk``, round-robin over
  every model of the call (so drift hits all of them alike: measure a reference net beside the
  nets under test to cancel it); after ``min_reps`` runs a model stops once the median of all its
  runs moved less than ``rel_tol`` since the previous round, or at ``max_reps``, or when the
  call has spent ``max_seconds``. Reported: median, spread (inter-quartile range), reps.
  With ``nodes`` each model also runs in a second, profiled session for ``node_reps`` runs
  (default: as many as the plain session needed, at least ``min_reps``) and the inter-quartile
  mean duration of every profiled node (robust, and finer than the profiler's 1 us ticks) is
  reported under its backend name (ORT: the profiler's node name without
  ``_kernel_time``; torch: the ONNX node name; TensorRT: the engine's layer name, fused layers
  joined with `` + ``). End-to-end figures always come from the session without profiling.

JSON-lines protocol (one object per line, on stdin; one reply per line on stdout)::

  {"op": "hello"}
    -> {"ok": true, "info": {"host", "cpu", "cores", "python", "numpy", "onnxruntime",
                             "providers", "torch", "cuda", "gpu", "tensorrt", "worker"}}
  {"op": "measure", "id": ID, "model_b64": BASE64_ONNX, "backend": "onnxruntime"|"torch"|"tensorrt",
   "options": {"provider", "threads", "precision", "device", "cuda_graphs", ...},
   "protocol": {...}, "nodes": false}             # nodes: a flag, or one flag per model (measure_many)
    -> {"id": ID, "median_ms", "spread_ms", "reps", "nodes": {name: ms} | null,
        "node_spreads": {name: IQR ms}, "node_reps", "node_total_ms", "profiled_median_ms"}
  {"op": "measure_many", "id": ID, "models_b64": [...], ...same fields...}
    -> {"id": ID, "results": [one measure reply body per model, in order]}
  any failure -> {"id": ID, "error": "one line"}
  {"op": "bye"} -> {"ok": true}, then the worker exits (so does end of input).
"""
from __future__ import annotations

import base64
import json
import os
import platform
import socket
import sys
import tempfile
import time

import numpy as np

WORKER_VERSION = 1
PROTOCOL = {"warmup": 10, "chunk": 5, "min_reps": 20, "max_reps": 300, "rel_tol": 0.01,
            "max_seconds": 60.0, "node_reps": None}
BACKENDS = ("onnxruntime", "torch", "tensorrt")


def protocol_with_defaults(protocol: dict | None) -> dict:
    """The full protocol: ``PROTOCOL`` updated with the given fields (unknown fields refused)."""
    p = dict(PROTOCOL)
    for k, v in (protocol or {}).items():
        if k not in PROTOCOL:
            raise ValueError(f"unknown protocol field {k!r}; known: {', '.join(PROTOCOL)}")
        p[k] = v
    return p


def iqm(values) -> float:
    """Inter-quartile mean: robust like the median, but finer than the profiler's 1 us ticks
    (per-node times of 3-50 us repeat ~20% more often within 5% with it than with the median)."""
    a = np.sort(np.asarray(values, dtype=float))
    q = len(a) // 4
    return float(np.mean(a[q: len(a) - q])) if len(a) >= 4 else float(np.mean(a))


def stats(times_ms) -> tuple[float, float]:
    """(median, inter-quartile range) of run times in ms."""
    a = np.asarray(times_ms, dtype=float)
    q25, q50, q75 = np.percentile(a, [25, 50, 75])
    return float(q50), float(q75 - q25)


# ---- host description --------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict:
    """What a LUT's provenance records about the machine and its runtimes."""
    info = {"host": socket.gethostname(), "cpu": cpu_model(), "machine": platform.machine(),
            "cores": os.cpu_count(), "os": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "worker": WORKER_VERSION}
    try:
        import onnxruntime as ort
        info["onnxruntime"] = ort.__version__
        info["providers"] = ort.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    try:
        import torch
        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = None
    try:
        import tensorrt
        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    return info


# ---- runners: one loaded model each; run() does one timed inference ----------------------------
class OrtRunner:
    """An ONNX Runtime session on the given execution provider, inputs bound once."""

    def __init__(self, model: bytes, options: dict, profile: bool = False):
        import onnxruntime as ort

        so = ort.SessionOptions()
        threads = int(options.get("threads") or 0)
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads == 1:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.profile = profile
        if profile:
            so.enable_profiling = True
            self._tmp = tempfile.mkdtemp(prefix="prune-lut-prof")
            so.profile_file_prefix = os.path.join(self._tmp, "p")
        provider = options.get("provider") or "CPUExecutionProvider"
        if provider not in ort.get_available_providers():
            raise RuntimeError(f"execution provider {provider} is not available here "
                               f"(available: {', '.join(ort.get_available_providers())})")
        self.sess = ort.InferenceSession(model, so, providers=[provider])
        self.feeds = {}
        for i in self.sess.get_inputs():
            shape = [d if isinstance(d, int) else int(options.get("batch") or 1) for d in i.shape]
            self.feeds[i.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)

    def run(self) -> float:
        t = time.perf_counter()
        self.sess.run(None, self.feeds)
        return (time.perf_counter() - t) * 1e3

    def node_times(self, last: int) -> dict[str, list[float]]:
        """Per-node durations (ms) of the last ``last`` runs, from ORT's profiler (ends profiling)."""
        path = self.sess.end_profiling()
        with open(path) as f:
            events = json.load(f)
        os.remove(path)
        os.rmdir(self._tmp)
        per: dict[str, list[float]] = {}
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                per.setdefault(e["name"][: -len("_kernel_time")], []).append(e["dur"] / 1e3)
        return {k: v[-last:] for k, v in per.items()}


class TorchRunner:
    """The ONNX graph executed node by node in PyTorch eager (CPU or CUDA).

    Supports the operators prune-lut exports (Conv, Relu, Clip, Add, MaxPool, GlobalAveragePool,
    Flatten, Gemm). CUDA runs are timed with CUDA events; ``cuda_graphs`` captures the whole
    forward once and replays it (end to end only). Per-node times: CPU wall clock around each node
    (synchronous), CUDA events between nodes (no synchronisation inside the run).
    """

    def __init__(self, model: bytes, options: dict, profile: bool = False):
        import onnx
        import torch
        from onnx import numpy_helper

        self.torch = torch
        dev = options.get("device") or "cpu"
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError("torch backend asked for CUDA but torch.cuda.is_available() is False")
        self.dev = torch.device(dev)
        self.dtype = {"fp16": torch.float16, "fp32": torch.float32}[(options.get("precision") or "fp32").lower()]
        threads = int(options.get("threads") or 0)
        if threads and self.dev.type == "cpu":
            torch.set_num_threads(threads)
        m = onnx.load_from_string(model)
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()).to(self.dev, self.dtype)
                       for t in m.graph.initializer}
        self.nodes = [(n.name, n.op_type, list(n.input), list(n.output),
                       {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}) for n in m.graph.node]
        self.output = m.graph.output[0].name
        inp = m.graph.input[0]
        shape = [d.dim_value or int(options.get("batch") or 1) for d in inp.type.tensor_type.shape.dim]
        self.input_name = inp.name
        self.x = torch.randn(*shape, device=self.dev, dtype=self.dtype)
        self.profile = profile
        self._node_ms: dict[str, list[float]] = {}
        self.graph = None
        if options.get("cuda_graphs") and self.dev.type == "cuda" and not profile:
            with torch.inference_mode():
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(3):
                        self.forward()
                torch.cuda.current_stream().wait_stream(s)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self.static_out = self.forward()

    def _op(self, op, ins, attrs):
        F = self.torch.nn.functional
        if op == "Conv":
            p = attrs.get("pads", [0, 0, 0, 0])
            return F.conv2d(ins[0], ins[1], ins[2] if len(ins) > 2 else None, stride=attrs.get("strides", [1, 1]),
                            padding=(p[0], p[1]), groups=attrs.get("group", 1))
        if op == "Relu":
            return F.relu(ins[0])
        if op == "Clip":
            return self.torch.clamp(ins[0], float(ins[1]), float(ins[2]))
        if op == "Add":
            return ins[0] + ins[1]
        if op == "MaxPool":
            p = attrs.get("pads", [0, 0, 0, 0])
            return F.max_pool2d(ins[0], attrs["kernel_shape"], attrs.get("strides", [1, 1]), (p[0], p[1]))
        if op == "GlobalAveragePool":
            return F.adaptive_avg_pool2d(ins[0], 1)
        if op == "Flatten":
            return self.torch.flatten(ins[0], attrs.get("axis", 1))
        if op == "Gemm":
            return F.linear(ins[0], ins[1] if attrs.get("transB") else ins[1].t(), ins[2])
        raise RuntimeError(f"torch backend: unsupported ONNX operator {op}")

    def forward(self, timed: bool = False):
        env = dict(self.consts)
        env[self.input_name] = self.x
        cuda = self.dev.type == "cuda"
        marks = []
        for name, op, ins, outs, attrs in self.nodes:
            if timed:
                if cuda:
                    ev = self.torch.cuda.Event(enable_timing=True)
                    ev.record()
                    marks.append((name, ev))
                else:
                    marks.append((name, time.perf_counter()))
            env[outs[0]] = self._op(op, [env[i] for i in ins], attrs)
        if timed:
            if cuda:
                end = self.torch.cuda.Event(enable_timing=True)
                end.record()
                end.synchronize()
                ends = [e for _, e in marks[1:]] + [end]
                for (name, ev), e2 in zip(marks, ends):
                    self._node_ms.setdefault(name, []).append(ev.elapsed_time(e2))
            else:
                ends = [t for _, t in marks[1:]] + [time.perf_counter()]
                for (name, t0), t1 in zip(marks, ends):
                    self._node_ms.setdefault(name, []).append((t1 - t0) * 1e3)
        return env[self.output]

    def run(self) -> float:
        torch = self.torch
        with torch.inference_mode():
            if self.dev.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                if self.graph is not None:
                    self.graph.replay()
                else:
                    self.forward(timed=self.profile)
                end.record()
                end.synchronize()
                return start.elapsed_time(end)
            t = time.perf_counter()
            self.forward(timed=self.profile)
            return (time.perf_counter() - t) * 1e3

    def node_times(self, last: int) -> dict[str, list[float]]:
        return {k: v[-last:] for k, v in self._node_ms.items()}


class TensorRTRunner:
    """A TensorRT engine built from the ONNX bytes at the profile's precision, timed with CUDA events.

    Written against TensorRT 10's Python API and cuda-python's ``cudart``; NOT VERIFIED (no GPU
    with TensorRT was available while writing it). Per-layer times come from ``trt.IProfiler``.
    """

    def __init__(self, model: bytes, options: dict, profile: bool = False):
        import tensorrt as trt
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart

        self.trt, self.cudart = trt, cudart
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        network = builder.create_network(0)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(model):
            raise RuntimeError("TensorRT could not parse the ONNX model: " +
                               "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors)))
        config = builder.create_builder_config()
        precision = (options.get("precision") or "fp16").lower()
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # no calibrator: timing only, values are meaningless
        if options.get("workspace_mb"):
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options["workspace_mb"]) << 20)
        if profile:
            config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
        batch = int(options.get("batch") or 1)
        inp = network.get_input(0)
        if -1 in tuple(inp.shape):
            prof = builder.create_optimization_profile()
            shape = tuple(batch if d == -1 else d for d in inp.shape)
            prof.set_shape(inp.name, shape, shape, shape)
            config.add_optimization_profile(prof)
        blob = builder.build_serialized_network(network, config)
        if blob is None:
            raise RuntimeError("TensorRT failed to build an engine (see its log above)")
        self.engine = trt.Runtime(logger).deserialize_cuda_engine(blob)
        self.context = self.engine.create_execution_context()
        self._check(cudart.cudaSetDevice(0))
        self.buffers = []
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            shape = tuple(batch if d == -1 else d for d in self.engine.get_tensor_shape(name))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.context.set_input_shape(name, shape)
            nbytes = int(np.prod(shape)) * np.dtype(trt.nptype(self.engine.get_tensor_dtype(name))).itemsize
            ptr = self._check(cudart.cudaMalloc(nbytes))
            self.buffers.append(ptr)
            self.context.set_tensor_address(name, ptr)
        self.stream = self._check(cudart.cudaStreamCreate())
        self.start = self._check(cudart.cudaEventCreate())
        self.end = self._check(cudart.cudaEventCreate())
        self._layer_ms: dict[str, list[float]] = {}
        if profile:
            runner = self

            class _Profiler(trt.IProfiler):
                def __init__(self):
                    trt.IProfiler.__init__(self)

                def report_layer_time(self, layer_name, ms):
                    runner._layer_ms.setdefault(layer_name, []).append(ms)

            self._profiler = _Profiler()
            self.context.profiler = self._profiler

    def _check(self, ret):
        err, *rest = ret if isinstance(ret, tuple) else (ret,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else rest

    def run(self) -> float:
        cudart = self.cudart
        self._check(cudart.cudaEventRecord(self.start, self.stream))
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execute_async_v3 failed")
        self._check(cudart.cudaEventRecord(self.end, self.stream))
        self._check(cudart.cudaEventSynchronize(self.end))
        return float(self._check(cudart.cudaEventElapsedTime(self.start, self.end)))

    def node_times(self, last: int) -> dict[str, list[float]]:
        return {k: v[-last:] for k, v in self._layer_ms.items()}


RUNNERS = {"onnxruntime": OrtRunner, "torch": TorchRunner, "tensorrt": TensorRTRunner}


def make_runner(model: bytes, backend: str, options: dict | None = None, profile: bool = False):
    if backend not in RUNNERS:
        raise ValueError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    return RUNNERS[backend](model, options or {}, profile=profile)


# ---- the protocol ------------------------------------------------------------------------------
def time_runners(runners: list, protocol: dict | None = None) -> list[list[float]]:
    """Run times (ms) per runner, taken round-robin in chunks until each median is stable."""
    p = protocol_with_defaults(protocol)
    for r in runners:
        for _ in range(int(p["warmup"])):
            r.run()
    times: list[list[float]] = [[] for _ in runners]
    done = [False] * len(runners)
    last_med = [None] * len(runners)
    t0 = time.perf_counter()
    while not all(done):
        for i, r in enumerate(runners):
            if done[i]:
                continue
            times[i].extend(r.run() for _ in range(int(p["chunk"])))
            n = len(times[i])
            med = float(np.median(times[i]))
            stable = last_med[i] is not None and abs(med - last_med[i]) <= p["rel_tol"] * med
            last_med[i] = med
            if (n >= p["min_reps"] and stable) or n >= p["max_reps"]:
                done[i] = True
        if time.perf_counter() - t0 > p["max_seconds"]:
            break
    return times


def measure_models(models: list[bytes], backend: str = "onnxruntime", options: dict | None = None,
                   protocol: dict | None = None, nodes: bool | list[bool] = False) -> list[dict]:
    """Measure several ONNX models with one protocol, interleaved (drift affects all alike).

    Returns one dict per model: ``median_ms``, ``spread_ms`` (IQR), ``reps``; with ``nodes`` also
    ``nodes`` {backend node name: inter-quartile mean ms}, ``node_spreads`` {name: IQR ms}, ``node_reps``,
    ``node_total_ms`` (median over runs of the per-run sum of node times) and ``profiled_median_ms`` (end to end with profiling on).
    """
    p = protocol_with_defaults(protocol)
    runners = [make_runner(m, backend, options) for m in models]
    times = time_runners(runners, p)
    del runners
    out = []
    for t in times:
        med, spread = stats(t)
        out.append({"median_ms": med, "spread_ms": spread, "reps": len(t), "nodes": None})
    flags = list(nodes) if isinstance(nodes, (list, tuple)) else [bool(nodes)] * len(models)
    if len(flags) != len(models):
        raise ValueError(f"nodes has {len(flags)} flags for {len(models)} models")
    for m, t, res, flag in zip(models, times, out, flags):
        if flag:
            reps = int(p["node_reps"] or max(len(t), p["min_reps"]))
            prof = make_runner(m, backend, options, profile=True)
            for _ in range(int(p["warmup"])):
                prof.run()
            prof_t = [prof.run() for _ in range(reps)]
            per = prof.node_times(reps)
            del prof
            res["nodes"] = {k: iqm(v) for k, v in per.items()}
            res["node_spreads"] = {k: stats(v)[1] for k, v in per.items()}
            res["node_reps"] = reps
            res["profiled_median_ms"] = float(np.median(prof_t))
            if per and len({len(v) for v in per.values()}) == 1:
                res["node_total_ms"] = float(np.median(np.sum(np.array(list(per.values())), axis=0)))
            else:
                res["node_total_ms"] = float(sum(res["nodes"].values()))
    return out


def measure_model(model: bytes, backend: str = "onnxruntime", options: dict | None = None,
                  protocol: dict | None = None, nodes: bool = False) -> dict:
    """Measure one ONNX model (bytes) end to end; see :func:`measure_models`."""
    return measure_models([model], backend, options, protocol, nodes)[0]


# ---- JSON-lines server -------------------------------------------------------------------------
def handle(req: dict) -> dict:
    """One request -> one reply (never raises)."""
    rid = req.get("id")
    try:
        op = req.get("op")
        if op == "hello":
            return {"id": rid, "ok": True, "info": host_info()}
        if op == "bye":
            return {"id": rid, "ok": True}
        args = dict(backend=req.get("backend", "onnxruntime"), options=req.get("options") or {},
                    protocol=req.get("protocol") or {}, nodes=req.get("nodes") if isinstance(req.get("nodes"), list) else bool(req.get("nodes")))
        if op == "measure":
            return {"id": rid, **measure_model(base64.b64decode(req["model_b64"]), **args)}
        if op == "measure_many":
            return {"id": rid, "results": measure_models([base64.b64decode(m) for m in req["models_b64"]], **args)}
        return {"id": rid, "error": f"unknown op {op!r}; expected hello, measure, measure_many or bye"}
    except KeyError as e:
        return {"id": rid, "error": f"request is missing field {e}"}
    except Exception as e:  # the reply carries the failure; the worker keeps serving
        msg = f"{type(e).__name__}: {e}".splitlines()[0] if str(e) else type(e).__name__
        return {"id": rid, "error": msg}


def main(stdin=None, stdout=None) -> int:
    """Serve JSON lines until ``bye`` or end of input."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("request must be a JSON object")
        except ValueError as e:
            stdout.write(json.dumps({"id": None, "error": f"bad request line: {e}"}) + "\n")
            stdout.flush()
            continue
        stdout.write(json.dumps(handle(req)) + "\n")
        stdout.flush()
        if req.get("op") == "bye":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
