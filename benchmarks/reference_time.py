"""The machine's reference time: torchvision's MobileNetV2 at 224x224, batch 1, ONNX Runtime on one thread.

Every timing in docs/BENCHMARKS.md is reported beside this figure, so runs on faster or slower machines
(or the same VM on another day) compare.

    python benchmarks/reference_time.py [--runs 30]
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch
import torchvision


def reference_ms(runs: int = 30, warmup: int = 5) -> dict:
    buf = io.BytesIO()
    torch.onnx.export(torchvision.models.mobilenet_v2().eval(), torch.randn(1, 3, 224, 224), buf,
                      input_names=["input"], dynamo=False)
    opt = ort.SessionOptions()
    opt.intra_op_num_threads = opt.inter_op_num_threads = 1
    sess = ort.InferenceSession(buf.getvalue(), opt, providers=["CPUExecutionProvider"])
    x = {"input": np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)}
    for _ in range(warmup):
        sess.run(None, x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, x)
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": runs}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=30)
    print(json.dumps(reference_ms(ap.parse_args().runs)))
