"""Does the search's fitness under-rate uniform width? Each uniform arch against random archs of its latency.

On Fashion-MNIST the uniform arch trained from scratch scored at or above most random archs of the
same predicted latency (docs/BENCHMARKS.md, "Five seeds at equal latency"), yet the searches' fitness
put their winners 1-6 points of sub-val accuracy above the uniform baseline, and those margins did not
carry over to scratch training. This asks the PruningNet directly: for every distinct uniform arch of the
checkpoint's space (between ``--min-x`` times the smallest arch's predicted latency and ``--max-share``
of the full net's), ``--n`` random archs predicted within ``--tol`` of its latency (level and narrow-end
draws, as the search draws its population), all scored by the search's own fitness (the PruningNet's
network, BatchNorm recalibrated, top-1 on the checkpoint's sub-validation split). Reports each uniform
arch's fitness, the random archs' median and range, and the uniform arch's percentile among them.

    python benchmarks/uniform_fitness.py --checkpoint runs/d14/pn.pt --lut runs/d14/cal.json.gz --out runs/d14/uniform.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from pruningnet_quality import equal_latency_archs  # noqa: E402
from reference_time import reference_ms  # noqa: E402

from prune_lut.files import write_json  # noqa: E402
from prune_lut.latency.lutfile import LUT  # noqa: E402
from prune_lut.latency.predictor import Predictor  # noqa: E402
from prune_lut.pruning.scoring import GeneratedNets  # noqa: E402
from prune_lut.pruning.search import pruningnet_checkpoint  # noqa: E402
from prune_lut.pruning.search.fitness import PruningNetFitness  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--lut", required=True)
    ap.add_argument("--out", required=True, help="report JSON")
    ap.add_argument("--n", type=int, default=30, help="random archs per uniform arch")
    ap.add_argument("--tol", type=float, default=0.05, help="relative latency band around each uniform arch")
    ap.add_argument("--min-x", type=float, default=1.2, help="lowest uniform latency, in smallest-arch latencies")
    ap.add_argument("--max-share", type=float, default=0.7, help="highest uniform latency, share of the full net's")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if Path(a.out).exists():
        raise SystemExit(f"{a.out} exists; choose another --out")
    ref0 = reference_ms()["median_ms"]
    ck = pruningnet_checkpoint(a.checkpoint)
    space = ck.space
    pred = Predictor(LUT.load(a.lut, space_hash=space.hash))
    predict = lambda arch: pred.predict_ms(space.layer_specs(arch))  # noqa: E731
    small, full = predict(space.smallest()), predict(space.full())
    data = ck.load_data()
    fitness = PruningNetFitness(GeneratedNets(ck.pruningnet, data, seed=0))  # as search_checkpoint
    uniforms = {space.vector(space.uniform(r)): r for r in sorted(space.grid)}
    rows = []
    for i, (vec, r) in enumerate(uniforms.items()):
        arch = dict(zip(space.genes, vec))
        ms = predict(arch)
        if not a.min_x * small <= ms <= a.max_share * full:
            continue
        others = [x for x in equal_latency_archs(space, predict, ms, a.n + 1, a.seed + i, a.tol)
                  if space.vector(x) != vec][:a.n]
        u, rand = fitness([arch])[0], fitness(others)
        below = sum(f < u for f in rand) + 0.5 * sum(f == u for f in rand)
        rows.append({"ratio": r, "latency_ms": ms, "x_smallest": ms / small, "share_of_full": ms / full,
                     "macs": space.macs(arch), "uniform": u, "random_median": statistics.median(rand),
                     "random_min": min(rand), "random_max": max(rand), "percentile": 100 * below / len(rand),
                     "random_macs_median": statistics.median(space.macs(x) for x in others), "n": len(rand)})
        row = rows[-1]
        print(f"x{r:g} {ms:.4g} ms ({row['x_smallest']:.2f}x smallest): uniform {u:.3f}, random median "
              f"{row['random_median']:.3f} ({row['random_min']:.3f}-{row['random_max']:.3f}), "
              f"percentile {row['percentile']:.0f}", flush=True)
    pct = [r["percentile"] for r in rows]
    gap = [100 * (r["uniform"] - r["random_median"]) for r in rows]
    report = {"settings": vars(a), "checkpoint_data": data.describe(), "smallest_ms": small, "full_ms": full,
              "rows": rows, "median_percentile": statistics.median(pct),
              "median_gap_points": statistics.median(gap), "reference_ms": [ref0, reference_ms()["median_ms"]],
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(a.out, report)
    print(f"{len(rows)} uniform archs: median percentile {report['median_percentile']:.0f} among random archs of "
          f"their latency, median gap {report['median_gap_points']:+.2f} points of sub-val accuracy")


if __name__ == "__main__":
    main()
