"""How few BatchNorm recalibration images rank archs as many do: the fitness under several settings.

Scores ``--archs`` archs with each setting (BATCHESxSIZE) and compares every ranking with the first
setting's (the reference: the most images) by Spearman and Kendall, beside the milliseconds per arch.
The archs are random ones of the space, or with ``--state`` ones a search scored late (from generation
``--late`` on: near the budget, all of them good; what the search must tell apart).

    python benchmarks/recalibration_rank.py CKPT --state result.state.json --out rank.json
"""
from __future__ import annotations

import argparse
import json
import random
import time

from scipy.stats import kendalltau, spearmanr

from prune_lut.pruning.scoring import GeneratedNets
from prune_lut.pruning.train import load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--archs", type=int, default=60)
    ap.add_argument("--state", help="a search state (result.state.json): score archs it scored late")
    ap.add_argument("--late", type=int, default=10)
    ap.add_argument("--settings", default="16x128,4x128,2x128,1x128")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    ck = load_checkpoint(a.checkpoint)
    pn, data, space = ck.pruningnet, ck.load_data(), ck.pruningnet.space
    rng = random.Random(1)
    if a.state:
        st = json.load(open(a.state))["evolution"]
        late = [dict(zip(st["genes"], e["genes"])) for e in st["scored"] if e["generation"] >= a.late]
        archs = rng.sample(late, a.archs)
    else:
        archs = [space.random(rng) for _ in range(a.archs)]
    out = {}
    for setting in a.settings.split(","):
        nb, bs = map(int, setting.split("x"))
        nets = GeneratedNets(pn, data, nb, bs, 0)
        t0 = time.perf_counter()
        acc = [nets.accuracy(x) for x in archs]
        out[setting] = {"acc": acc, "ms": 1000 * (time.perf_counter() - t0) / len(archs),
                        "parts_ms": {k: 1000 * v / len(archs) for k, v in nets.times.items()}}
    ref = out[a.settings.split(",")[0]]["acc"]
    for setting, v in out.items():
        v["spearman"], v["kendall"] = spearmanr(ref, v["acc"]).statistic, kendalltau(ref, v["acc"]).statistic
        v["mean_abs_diff"] = sum(abs(x - y) for x, y in zip(ref, v["acc"])) / len(ref)
        print(setting, f"{v['ms']:.0f} ms/arch", {p: round(x) for p, x in v["parts_ms"].items()},
              f"spearman {v['spearman']:.3f} kendall {v['kendall']:.3f} |d| {v['mean_abs_diff']:.4f}")
    with open(a.out, "w") as f:
        json.dump({"checkpoint": a.checkpoint, "archs": len(archs), "state": a.state, "results": out}, f)


if __name__ == "__main__":
    main()
