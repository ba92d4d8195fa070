"""Does a net's measured latency depend on the nets measured beside it (``measure_many``)?

The full net and a small one (uniform x0.37) of the quickstart space at 14x14 on the `cpu` profile,
each measured alone, beside one other net, and among 8 other nets, ``--repeats`` times (medians).
Validation times every net beside the table's reference; verification and the search benchmark
measure many nets interleaved; a large net whose weights leave the cache between its runs is slower
there, which this measures.

    python benchmarks/measure_context.py
"""
from __future__ import annotations

import argparse
import statistics

from prune_lut.latency.measure import measure_many
from prune_lut.quickstart import SPACE
from prune_lut.tables.networks import onnx_bytes
from prune_lut.pruning.space import get_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=4)
    a = ap.parse_args()
    sp = get_space(**{**SPACE, "resolution": a.resolution})
    full, small = onnx_bytes(sp, sp.full()), onnx_bytes(sp, sp.uniform(0.37))
    others = [onnx_bytes(sp, sp.uniform(r)) for r in (0.31, 0.34, 0.4, 0.43, 0.46, 0.49, 0.52, 0.61)]
    for name, net, partner in (("full", full, small), ("x0.37", small, full)):
        runs = {"alone": [], "beside one": [], "among 8": []}
        for _ in range(a.repeats):  # interleaved, so drift over the run hits each context alike
            runs["alone"].append(measure_many("cpu", [net])[0].median_ms)
            runs["beside one"].append(measure_many("cpu", [partner, net])[1].median_ms)
            runs["among 8"].append(measure_many("cpu", others + [net])[-1].median_ms)
        alone = statistics.median(runs["alone"])
        print(name + ": " + "; ".join(
            f"{k} {statistics.median(v):.4f} ms ({100 * (statistics.median(v) / alone - 1):+.0f}%; "
            f"{min(v):.4f}-{max(v):.4f})" for k, v in runs.items()))


if __name__ == "__main__":
    main()
