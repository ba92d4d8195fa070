"""A complete PruningNet training on digits in the quickstart's space (target: <= 5 minutes on 2 cores).

Space: mobilenet_v2, small-input stem, resolution 8, 1 channel, 10 classes, multiple 8; batch 32
(digits has 1238 sub-train images: 38 steps per epoch), 10 epochs, other options at their defaults
(`prune-lut train --family mobilenet_v2 --data digits --multiple 8 --batch-size 32`).
Afterwards the generated networks of a few archs are scored on the test set after BatchNorm
recalibration.

    flock /tmp/prune-lut-cpu.lock python benchmarks/train_digits_quickstart.py --out runs/digits.pt
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from prune_lut.pruning.data import load_data
from prune_lut.pruning.space import get_space
from prune_lut.pruning.scoring import GeneratedNets
from prune_lut.pruning.train import VAL_RECAL_BATCHES, train_pruningnet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=32, help="small: digits has 1238 sub-train images")
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--out", default="runs/digits-pruningnet.pt")
    a = ap.parse_args()
    if os.path.exists(a.out):
        os.remove(a.out)  # a complete run from scratch
    t0 = time.perf_counter()
    data = load_data("digits")
    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    res = train_pruningnet(sp, data, epochs=a.epochs, batch_size=a.batch_size, hidden=a.hidden, lr=a.lr, out=a.out, progress=False,
                           score_archs="full+smallest")
    wall = time.perf_counter() - t0
    from prune_lut.pruning.train import load_checkpoint

    pn = load_checkpoint(a.out).pruningnet
    nets = GeneratedNets(pn, data, VAL_RECAL_BATCHES)
    test = {name: nets.accuracy(arch, "test") for name, arch in
            (("full", sp.full()), ("uniform0.5", sp.uniform(0.5)), ("uniform0.25", sp.uniform(0.25)),
             ("smallest", sp.smallest()))}
    print(json.dumps({"train_wall_s": round(wall, 1), "epochs": res.header["config"]["epochs"],
                      "hidden": res.header["config"]["hidden"], "steps_per_epoch": res.header["steps_per_epoch"],
                      "checkpoint_MB": round(os.path.getsize(a.out) / 2**20, 1), "last_epoch": res.history[-1],
                      "test_acc_after_recal": test, "threads": torch.get_num_threads(),
                      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, default=str))


if __name__ == "__main__":
    main()
