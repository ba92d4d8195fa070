"""Benchmark: how well a LUT predicts whole networks on its device (`prune-lut validate --fit`).

Runs the same code as the CLI on a *copy* of the table (the shipped file keeps its calibration
unless --store), times it, and prints the held-out figures plus what the data say about where the
table sum misses: the per-op-group factors of a per_op fit on all samples (a factor below 1 means
the table over-states that op group inside whole networks), and the raw-sum bias per latency tercile.

    flock /tmp/prune-lut-cpu.lock python benchmarks/validate_accuracy.py --lut prune_lut/lut_data/cpu-mobilenet_v2-224.json.gz \
        --samples 50 --out /tmp/val-mnv2.json --plot /tmp/val-mnv2.png
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from prune_lut.latency.calibration import _fit_model
from prune_lut.latency.report import format_figures, plot
from prune_lut.latency.validate import headline_predictions
from prune_lut.tables.validate import validate_table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", action="store_true", help="store the calibration in --lut itself")
    ap.add_argument("--out", help="write the record (JSON) here")
    ap.add_argument("--plot", help="write the PNG here")
    a = ap.parse_args()
    lut = Path(a.lut)
    work = lut if a.store else Path(tempfile.mkdtemp()) / lut.name
    if not a.store:
        shutil.copy(lut, work)
    t = time.perf_counter()
    rec = validate_table(work, samples=a.samples, seed=a.seed, fit=True, record_path=a.out, progress=True)
    wall = time.perf_counter() - t
    rep = rec["report"]
    print(f"{lut.name}: {a.samples} samples, wall {wall:.0f} s (measuring {rec['seconds']:.0f} s)")
    for w in rec["warnings"]:
        print("warning:", w)
    print(format_figures("table sum, all", rep["table_sum"]))
    if "lut_prediction" in rep:
        print(format_figures(f"table + {rec['lut_calibration_source']} calibration, all", rep["lut_prediction"]))
    print("held-out candidates:", ", ".join(f"{k} {v['mean_abs_pct']:.2f}% / {100 * v['within_10']:.0f}%"
                                            for k, v in rep["fit"]["heldout_candidates"].items()))
    print(format_figures(rep["headline_name"], rep["headline"]))
    print(f"MACs proxy (held-out): Spearman {rep['headline_macs']['spearman']:.3f}, "
          f"Kendall {rep['headline_macs']['kendall']:.3f}")
    nz = rep["noise"]
    print(f"noise floor: {nz['pairs']} pairs, {100 * nz['within_5']:.0f}% within 5%, "
          f"{100 * nz['within_10']:.0f}% within 10%, median {nz['median_abs_pct']:.1f}%")
    S = rec["samples"]
    y = np.array([s["measured_ms"] for s in S])
    per_op = _fit_model("per_op", [s["features"] for s in S], y)
    print("per-op factors (all samples):", {k: round(v, 3) for k, v in per_op.coef.items()})
    ts = np.array([s["table_sum_ms"] for s in S])
    order = np.argsort(ts)
    for name, part in zip(("fast", "middle", "slow"), np.array_split(order, 3)):
        print(f"  {name} third: table sum / measured = {np.median(ts[part] / y[part]):.3f}")
    for kind in (True, False):
        idx = [i for i, s in enumerate(S) if s["rounded"] == kind]
        if idx:
            print(f"  {'rounded' if kind else 'off-multiple'} widths ({len(idx)}): table sum / measured = "
                  f"{np.median(ts[idx] / y[idx]):.3f}")
    if a.plot:
        p, m, macs, held = headline_predictions(rec)
        plot(a.plot, p, m, macs, held, title=f"{lut.name}: {rep['headline_name']}")
    if a.out:
        rec["benchmark"] = {"wall_s": wall, "per_op_all": per_op.coef}
        Path(a.out).write_text(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main()
