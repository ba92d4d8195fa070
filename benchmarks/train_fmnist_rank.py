"""PruningNet quality on Fashion-MNIST (issue 5 targets), CPU-sized.

1. The PruningNet's network for the full-width arch (after BatchNorm recalibration) vs the same
   plain network trained directly for the same epochs on the same images: test accuracy ratio
   (target >= 0.90).
2. 20 random archs spread over the space's size range: PruningNet accuracy on the sub-validation
   split after recalibration (what the search scores) vs the test accuracy of the same archs
   trained from scratch: Spearman rank correlation (target >= 0.6).

Every training run checkpoints and resumes, and results.json is rewritten after each arch, so an
interrupted benchmark continues where it stopped:

    flock /tmp/prune-lut-cpu.lock python benchmarks/train_fmnist_rank.py --out runs/fmnist
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import time
from pathlib import Path

import torch
from scipy.stats import spearmanr

from prune_lut.files import write_json
from prune_lut.pruning.data import load_data
from prune_lut.pruning.space import ChannelSpace
from prune_lut.pruning.scoring import GeneratedNets
from prune_lut.pruning.train import VAL_RECAL_BATCHES, load_checkpoint, train_plain, train_pruningnet
from small_space import small_space  # benchmarks/ (this script's folder)


def spread_archs(space: ChannelSpace, n: int, seed: int) -> list[dict[str, int]]:
    """``n`` random archs whose sizes cover the space: arch i draws every gene uniformly among the
    widths within +-0.2 of a ratio that steps from 0.1 to 1.0."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = 0.1 + 0.9 * i / max(n - 1, 1)
        arch = {}
        for name, g in space.genes.items():
            near = [w for w in g.choices if abs(w / g.base - r) <= 0.2] or [min(g.choices, key=lambda w: abs(w / g.base - r))]
            arch[name] = rng.choice(near)
        out.append(arch)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--resolution", type=int, default=14)
    ap.add_argument("--train-per-class", type=int, default=400)
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=12, help="PruningNet and full-width plain epochs")
    ap.add_argument("--scratch-epochs", type=int, default=6, help="epochs of each of the archs trained from scratch")
    ap.add_argument("--plain-epochs", type=int, help="epochs of the full-width plain network (default: --epochs)")
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rule", default=None, help="PruningNet training rule (default: train's)")
    ap.add_argument("--random-archs", type=int, default=None)
    ap.add_argument("--distill", type=int, choices=(0, 1), default=None)
    ap.add_argument("--out", default="runs/fmnist-rank")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data = load_data(a.data, resolution=a.resolution, train_per_class=a.train_per_class,
                     test_per_class=a.test_per_class, seed=a.seed)
    space = small_space(data)
    res = {"command": "python benchmarks/train_fmnist_rank.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(a).items()),
           "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "data": data.describe(), "space": space.describe(), "space_hash": space.hash}
    opts = dict(batch_size=a.batch_size, lr=a.lr, seed=a.seed, resume=True, progress=False)
    t = time.time()
    pn = train_pruningnet(space, data, epochs=a.epochs, out=out / "pruningnet.pt", hidden=a.hidden,
                          rule=a.rule, random_archs=a.random_archs,
                          distill=None if a.distill is None else bool(a.distill), **opts)
    res["pruningnet_history"] = pn.history
    res["pruningnet_train_s"] = round(time.time() - t, 1)
    ck = load_checkpoint(out / "pruningnet.pt")
    full = space.full()
    t = time.time()
    plain = train_plain(space, full, data, epochs=a.plain_epochs or a.epochs, out=out / "plain-full.pt", holdout=True,
                        **opts)
    res["plain_full_train_s"] = round(time.time() - t, 1)
    res["plain_full_test"] = plain.test_acc
    nets = GeneratedNets(ck.pruningnet, data, VAL_RECAL_BATCHES, seed=a.seed)
    res["pruningnet_full_test"] = nets.accuracy(full, "test")
    res["full_ratio"] = res["pruningnet_full_test"] / plain.test_acc
    write_json(out / "results.json", res)
    rows = []
    for i, arch in enumerate(spread_archs(space, a.archs, a.seed + 1)):
        t = time.time()
        row = {"i": i, "macs": space.macs(arch), "genes": arch,
               "pn_val": nets.accuracy(arch, "val"), "pn_test": nets.accuracy(arch, "test")}
        sc = train_plain(space, arch, data, epochs=a.scratch_epochs, out=out / f"scratch-{i:02d}.pt", holdout=True, **opts)
        row["scratch_test"] = sc.test_acc
        row["scratch_val"] = sc.history[-1].get("val_acc")
        row["seconds"] = round(time.time() - t, 1)
        rows.append(row)
        res["archs"] = rows
        if len(rows) >= 3:
            res["spearman_pn_val_vs_scratch_test"] = spearmanr([r["pn_val"] for r in rows], [r["scratch_test"] for r in rows])[0]
            res["spearman_pn_test_vs_scratch_test"] = spearmanr([r["pn_test"] for r in rows], [r["scratch_test"] for r in rows])[0]
            res["spearman_macs_vs_scratch_test"] = spearmanr([r["macs"] for r in rows], [r["scratch_test"] for r in rows])[0]
        res["total_s"] = round(time.time() - t0, 1)
        write_json(out / "results.json", res)
        logging.info("arch %d: %.1f M MACs  pn_val %.3f  scratch_test %.3f", i, row["macs"] / 1e6, row["pn_val"], row["scratch_test"])
    print(json.dumps({k: v for k, v in res.items() if k not in ("archs", "pruningnet_history")}, indent=2))


if __name__ == "__main__":
    main()
