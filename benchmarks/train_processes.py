"""Does a second process speed up the quickstart's training on a small CPU? One process with 2 torch
threads against two processes of one thread: two independent nets at once, and data parallelism of
one net or of the PruningNet (``distributed.spawn``, what torchrun starts). Digits at the quickstart's
settings (batch 32, lr 0.02, its space's full net), ``--epochs`` each. Prints seconds (and the test
accuracy, or the PruningNet's last loss) per setting. Run it alone:

    python benchmarks/train_processes.py --epochs 2
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import torch

from prune_lut.pruning.distributed import spawn
from prune_lut.pruning.train import data_for, train_plain, train_pruningnet
from prune_lut.quickstart import quickstart_space


def timed(kind: str, out: str, epochs: int, threads: int | None = None, say=None) -> tuple[float, float]:
    """Seconds to train ``kind`` ("net": the full net; "pruningnet"), and its test accuracy or last loss."""
    if threads:
        torch.set_num_threads(threads)
    sp = quickstart_space()
    data = data_for("digits", resolution=sp.resolution, seed=0)
    opts = dict(epochs=epochs, batch_size=32, lr=0.02, seed=0, out=out, progress=False)
    t = time.perf_counter()
    if kind == "net":
        score = train_plain(sp, sp.full(), data, **opts).test_acc
    else:
        score = train_pruningnet(sp, data, score_archs="none", **opts).history[-1]["loss"]
    return time.perf_counter() - t, score


def independent(out: str, epochs: int, say=None) -> tuple[float, float]:
    """Each process trains its own net: no process group (drop the variables it would join by)."""
    rank = os.environ["RANK"]
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        os.environ.pop(k)
    return timed("net", f"{out}-{rank}.pt", epochs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    tmp, res = tempfile.mkdtemp(), {}
    res["net, 1 process x 2 threads"] = timed("net", f"{tmp}/a.pt", a.epochs, threads=2)
    res["net, 1 process x 1 thread"] = timed("net", f"{tmp}/b.pt", a.epochs, threads=1)
    t = time.perf_counter()
    spawn(independent, (f"{tmp}/c", a.epochs), 2)
    res["two nets at once, 2 processes x 1 thread, wall with start-up"] = time.perf_counter() - t
    t = time.perf_counter()
    res["net, data parallel over 2 processes x 1 thread (rank 0)"] = spawn(timed, ("net", f"{tmp}/d.pt", a.epochs), 2)
    res["net, data parallel, wall with start-up"] = time.perf_counter() - t
    res["PruningNet, 1 process x 2 threads"] = timed("pruningnet", f"{tmp}/e.pt", a.epochs, threads=2)
    res["PruningNet, data parallel over 2 processes x 1 thread (rank 0)"] = spawn(
        timed, ("pruningnet", f"{tmp}/f.pt", a.epochs), 2)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
