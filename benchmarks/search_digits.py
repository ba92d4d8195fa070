"""Search speed on the quickstart's digits space, and the exported winner's latency vs its prediction.

1. A 50 x 20 search (population x generations) at half the full network's predicted latency on
   the `cpu` table, with 1 process and with 2 torchrun processes (1 thread each): wall time,
   evaluations per second, share of evaluation time in BatchNorm recalibration.
2. The winner, the uniform-width baseline and the full network exported to ONNX and measured end
   to end on this CPU (interleaved, the device's protocol): measured vs predicted, under budget?

    flock /tmp/prune-lut-cpu.lock python benchmarks/search_digits.py --checkpoint quickstart/pruningnet.pt \
        --lut quickstart/cpu.lut.json.gz --out runs/search-digits

Without --checkpoint a digits PruningNet is trained first (train's defaults) into --out.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from prune_lut.latency.lutfile import LUT
from prune_lut.latency.measure import measure_many
from prune_lut.latency.predictor import Predictor
from prune_lut.files import write_json
from prune_lut.pruning.export import save_onnx
from prune_lut.quickstart import quickstart_space
from prune_lut.pruning.scoring import GeneratedNets
from prune_lut.pruning.search import load_result, pruningnet_checkpoint


def run_search(procs: int, a, budget: float, out: Path) -> dict:
    res_path = out / f"result-{procs}p.json"
    for p in (res_path, res_path.with_name(res_path.stem + ".state.json")):
        p.unlink(missing_ok=True)
    args = ["search", "--checkpoint", a.checkpoint, "--lut", a.lut, "--latency-ms", str(budget),
            "--population", str(a.population), "--generations", str(a.generations), "--seed", str(a.seed),
            "--parents", str(min(10, a.population)),
            "--out", str(res_path), "--plot", str(out / f"search-{procs}p.png")]
    cmd = ([sys.executable, "-m", "prune_lut.cli"] if procs == 1 else
           [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
            "-m", "prune_lut.cli"]) + args
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    r = load_result(res_path)
    t = r["timing_s"]
    return {"processes": procs, "wall_s": wall, "search_s": r["elapsed_s"], "evaluations": r["evaluations"],
            "evals_per_s": r["evaluations"] / r["elapsed_s"],
            "recal_share_of_eval_rank0": t.get("recalibrate", 0) / t["evaluate_total"] if t["evaluate_total"] else None,
            "timing_rank0_s": t, "best_accuracy": r["top"][0]["accuracy"],
            "best_latency_ms": r["top"][0]["latency_ms"]["cpu"],
            "uniform": {"ratio": r["uniform_baseline"]["ratio"], "accuracy": r["uniform_baseline"]["accuracy"]},
            "result": str(res_path)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint")
    ap.add_argument("--lut", help="cpu table of the quickstart space (default: the shipped one)")
    ap.add_argument("--out", default="runs/search-digits")
    ap.add_argument("--population", type=int, default=50)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--budget-share", type=float, default=0.5)
    ap.add_argument("--processes", default="1,2")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    space = quickstart_space()
    if a.lut is None:
        from prune_lut.lut_data import find_table

        a.lut = str(find_table(space, "cpu"))
    if a.checkpoint is None:
        from prune_lut.pruning.data import load_data
        from prune_lut.pruning.train import train_pruningnet

        a.checkpoint = str(out / "pruningnet.pt")
        train_pruningnet(space, load_data("digits", resolution=8), out=a.checkpoint, resume=True)
    pred = Predictor(LUT.load(a.lut, space_hash=space.hash))
    full_ms = pred.predict_ms(space.layer_specs(space.full()))
    budget = a.budget_share * full_ms
    runs = [run_search(int(p), a, budget, out) for p in a.processes.split(",")]

    # the winner (of the last run; all runs give the same result), baseline and full net, measured here
    r = load_result(runs[-1]["result"])
    ck = pruningnet_checkpoint(a.checkpoint)
    fit = GeneratedNets(ck.pruningnet, ck.load_data())
    nets = {"winner": r["top"][0]["arch"]["genes"], "uniform": r["uniform_baseline"]["arch"]["genes"],
            "full": space.full()}
    files = {}
    for name, genes in nets.items():
        files[name] = out / f"{name}.onnx"
        save_onnx(files[name], space, fit.network(space.check_arch(genes)))
    meas = measure_many("cpu", list(files.values()))
    measured = {}
    for (name, genes), m in zip(nets.items(), meas):
        p = pred.predict_ms(space.layer_specs(space.check_arch(genes)))
        measured[name] = {"predicted_ms": p, "measured_ms": m.median_ms, "spread_ms": m.spread_ms,
                          "error_pct": 100 * (p / m.median_ms - 1), "under_budget": m.median_ms <= budget}
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "host": platform.node(),
              "cpus": os.cpu_count(), "command": " ".join(sys.argv), "lut": a.lut, "calibrated": pred.calibrated,
              "checkpoint": a.checkpoint, "budget_ms": budget, "full_predicted_ms": full_ms, "searches": runs,
              "measured": measured}
    write_json(out / "report.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
