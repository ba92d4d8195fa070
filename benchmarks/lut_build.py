"""Benchmark: full MobileNetV2-224 LUT build for the `cpu` device, repeatability, regressor error.

Runs ``--new`` fresh builds with ``prune-lut build`` (each timed wall clock, in a subprocess), then
compares every pair of tables (the new ones plus any FILES given): the share of entries measured
in both whose medians agree within 5% (target >= 95%), the regressor's held-out median abs error
(target <= 5%), and each table's sum->e2e figures on held-out networks. Prints JSON.

    flock /tmp/prune-lut-cpu.lock python benchmarks/lut_build.py --new 2 --out-dir /tmp/lutbench
    python benchmarks/lut_build.py prune_lut/lut_data/cpu-*-mobilenet_v2-224.json.gz --new 1
"""
from __future__ import annotations

import argparse
import itertools
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from prune_lut.latency.lutfile import LUT


def agreement(a: LUT, b: LUT, tol: float = 0.05, archs: int = 200, seed: int = 0) -> dict:
    """Entry-level agreement (all entries; entries of >= 50 us) and network-level agreement (table
    sums of random archs of the space, which is what predictions use)."""
    import random

    from prune_lut.pruning import families  # noqa: F401  (registers the families)
    from prune_lut.pruning.space import ChannelSpace

    common = sorted(a.measured_keys() & b.measured_keys())
    x = np.array([a.entries[k]["median_ms"] for k in common])
    y = np.array([b.entries[k]["median_ms"] for k in common])
    nz = (x > 0) | (y > 0)  # fused-away operators are 0 in both
    rel = np.abs(x[nz] - y[nz]) / np.maximum(x[nz], y[nz])
    big = np.maximum(x[nz], y[nz]) >= 0.05
    sp = ChannelSpace.from_description(a.space)
    rng = random.Random(seed)
    sums = []
    for _ in range(archs):
        keys = [s.key for s in sp.layer_specs(sp.random(rng))]
        sums.append((sum(a.entries[k]["median_ms"] for k in keys), sum(b.entries[k]["median_ms"] for k in keys)))
    sa, sb = np.array(sums).T
    nrel = np.abs(sa - sb) / np.maximum(sa, sb)
    return {"common_measured": len(common), "nonzero": int(nz.sum()), "within_5pct": float(np.mean(rel <= tol)),
            "within_10pct": float(np.mean(rel <= 0.10)), "median_rel_diff": float(np.median(rel)),
            "entries_ge_50us": int(big.sum()), "within_5pct_ge_50us": float(np.mean(rel[big] <= tol)),
            "time_weighted_within_5pct": float(np.sum(np.maximum(x[nz], y[nz])[rel <= tol]) /
                                               np.sum(np.maximum(x[nz], y[nz]))),
            "random_arch_sums_within_5pct": float(np.mean(nrel <= tol)),
            "random_arch_sums_median_rel_diff": float(np.median(nrel)), "archs": archs,
            "total_ms_ratio": float(x.sum() / y.sum())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="Existing tables to compare as well.")
    ap.add_argument("--new", type=int, default=2, help="Fresh builds to run.")
    ap.add_argument("--out-dir", default="/tmp/lutbench")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files, walls = [Path(f) for f in args.files], {}
    for i in range(args.new):
        f = out / f"build{i + 1}-{int(time.time())}.json.gz"
        t = time.monotonic()
        subprocess.run([sys.executable, "-m", "prune_lut.cli", "build", "--device", args.device, "--family",
                        "mobilenet_v2", "--out", str(f), "--seed", str(args.seed)], check=True, stdout=sys.stderr)
        walls[str(f)] = time.monotonic() - t
        files.append(f)
    luts = {str(f): LUT.load(f) for f in files}
    report = {"machine": f"{platform.machine()} {luts[str(files[0])].provenance.get('cpu')}, "
                         f"{luts[str(files[0])].provenance.get('cores')} cores",
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "tables": {}, "pairs": []}
    for f, lut in luts.items():
        b, s2e, reg = lut.extra.get("build", {}), lut.extra.get("sum_to_e2e") or {}, lut.regressor or {}
        report["tables"][f] = {
            "wall_s": walls.get(f), "build_elapsed_s": b.get("elapsed_s"), "networks": b.get("networks_done"),
            "entries": len(lut.entries), "measured": len(lut.measured_keys()),
            "regressor_heldout_median_abs_err": reg.get("heldout_median_abs_rel_err"),
            "regressor_heldout_p90_abs_err": reg.get("heldout_p90_abs_rel_err"),
            "sum_to_e2e": s2e, "reference_ms": (lut.reference or {}).get("median_ms"),
            "passes": {p: sum(1 for n in lut.extra["networks"] if n.get("pass") == p)
                       for p in {n.get("pass") for n in lut.extra["networks"]}},
            # profiled node times of a network vs its end-to-end time without profiling
            "node_sum_over_e2e_p10_50_90": [float(x) for x in np.percentile(
                [n["node_sum_ms"] / n["e2e_ms"] for n in lut.extra["networks"]], [10, 50, 90])],
            "ref_ms_p10_50_90": [float(x) for x in np.percentile(
                [n["ref_ms"] for n in lut.extra["networks"]], [10, 50, 90])]}
    for (fa, a), (fb, b) in itertools.combinations(luts.items(), 2):
        report["pairs"].append({"a": fa, "b": fb, **agreement(a, b)})
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
