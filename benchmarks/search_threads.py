"""Seconds per scored arch (generate + BN recalibration + sub-val top-1) with 1 and with 2 torch threads.

Why `search` defaults to one thread per process: the candidate networks of the quickstart space
are tiny (8x8 inputs), so their time is per-operator overhead, and OpenMP threads that spin-wait
on a busy machine slow them down instead of up.

    python benchmarks/search_threads.py CKPT [--archs 6]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time


def one(ckpt: str, threads: int, n: int) -> list[float]:
    import torch

    from prune_lut.pruning.scoring import GeneratedNets
    from prune_lut.pruning.search import pruningnet_checkpoint

    torch.set_num_threads(threads)
    ck = pruningnet_checkpoint(ckpt)
    fit = GeneratedNets(ck.pruningnet, ck.load_data())
    rng = random.Random(0)
    out = []
    for i in range(n):
        arch = fit.space.uniform(0.5) if i % 3 == 0 else fit.space.random(rng)
        t0 = time.perf_counter()
        fit.score(arch)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(one(a.checkpoint, a.child, a.archs)))
        return
    rep = {"loadavg_before": os.getloadavg()}
    for t in (1, 2):  # a fresh process each: the thread pool is set once per process
        p = subprocess.run([sys.executable, __file__, a.checkpoint, "--archs", str(a.archs), "--child", str(t)],
                           capture_output=True, text=True, check=True)
        secs = json.loads(p.stdout)
        rep[f"threads_{t}"] = {"per_arch_s": secs, "median_s": sorted(secs)[len(secs) // 2]}
    rep["loadavg_after"] = os.getloadavg()
    print(json.dumps(rep, indent=2))


if __name__ == "__main__":
    main()
