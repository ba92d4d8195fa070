"""Does the search buy accuracy? Searched archs vs uniform-width archs, both trained from scratch.

On Fashion-MNIST (resized to the quickstart space's 8x8, or to --resolution R with a --lut built for
that space; a class-balanced subset: CPU-sized), at budgets of about 30/50/70% of the full
network's predicted `cpu` latency:
  1. a PruningNet is trained once (train's loop) on the subset;
  2. one search per budget (the real fitness: BN-recalibrated PruningNet networks on sub-val);
  3. the winner and its uniform-width rival are measured end to end on this CPU (interleaved);
     the rival is the narrowest uniform ratio whose *measured* latency is >= the winner's
     (equal or higher latency, so the comparison never favours the search);
  4. both are trained from scratch (`retrain`'s train_plain) with several seeds; test accuracy
     mean and spread per budget.
Everything resumes: checkpoints per run, report.json rewritten after each retrain.

    flock /tmp/prune-lut-cpu.lock python benchmarks/search_fmnist_retrain.py --lut LUT --out runs/fmnist-search
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from prune_lut.latency.lutfile import LUT
from prune_lut.latency.measure import measure_many
from prune_lut.latency.predictor import Predictor
from prune_lut.pruning.arch import read_json, write_json_atomic
from prune_lut.pruning.data import load_data
from prune_lut.pruning.evolution import EvolutionConfig
from prune_lut.pruning.export import onnx_model
from prune_lut.pruning.net import build_net
from prune_lut.pruning.quickstart import SPACE
from prune_lut.pruning.space import get_space
from prune_lut.pruning.search import load_result, search_checkpoint
from prune_lut.pruning.train import train_plain, train_pruningnet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", help="cpu table of the space (default: the shipped one of the quickstart space)")
    ap.add_argument("--resolution", type=int, default=SPACE["resolution"],
                    help="image size: the quickstart space at another resolution (needs a --lut built for it)")
    ap.add_argument("--out", default="runs/fmnist-search")
    ap.add_argument("--train-per-class", type=int, default=300, help="0: the whole training set")
    ap.add_argument("--val-per-class", type=int, default=100,
                    help="sub-validation images per class: what the search scores archs on")
    ap.add_argument("--pn-latency-range", help="LO,HI: train the PruningNet on archs predicted between these "
                    "shares of the full net's latency (train --latency-range); default: the whole space")
    ap.add_argument("--pn-epochs", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=6, help="from-scratch epochs per arch")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budgets", default="0.3,0.5,0.7")
    ap.add_argument("--population", type=int, default=30)
    ap.add_argument("--generations", type=int, default=10)
    ap.add_argument("--remeasure", type=int, default=0, metavar="N",
                    help="measure each budget's winner, its rival and the budget's uniform arch again, interleaved, "
                    "N times (run it on a quiet machine; the first measurement may have shared the CPU)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    space = get_space(**{**SPACE, "resolution": a.resolution})
    if a.lut is None:
        from prune_lut.lut_data import find_table

        a.lut = str(find_table(space, "cpu"))
    pred = Predictor(LUT.load(a.lut, space_hash=space.hash))
    full_ms = pred.predict_ms(space.layer_specs(space.full()))
    t_start = time.perf_counter()
    rep_path = out / "report.json"
    report = read_json(rep_path) if rep_path.exists() else {}
    report.update({"command": " ".join(sys.argv), "host": platform.node(), "cpus": os.cpu_count(), "lut": a.lut,
                   "calibrated": pred.calibrated, "full_predicted_ms": full_ms,
                   "settings": vars(a), "budgets": report.get("budgets", {})})

    data = load_data("fashion-mnist", resolution=a.resolution, train_per_class=a.train_per_class or None,
                     val_per_class=a.val_per_class, seed=0)
    ckpt = out / "pruningnet.pt"
    t0 = time.perf_counter()
    lat_range = tuple(float(x) * full_ms for x in a.pn_latency_range.split(",")) if a.pn_latency_range else None
    train_pruningnet(space, data, epochs=a.pn_epochs, out=ckpt, resume=True, progress=False, validate_archs="none",
                     latency_range=lat_range, lut=a.lut if lat_range else None)
    report["pruningnet_s"] = report.get("pruningnet_s") or time.perf_counter() - t0

    ratios = sorted({r for r in space.grid})
    uniform_archs = {r: space.uniform(r) for r in ratios}
    for share in (float(s) for s in a.budgets.split(",") if s):  # --budgets "": train the PruningNet only
        key = f"{share:.2f}"
        b = report["budgets"].setdefault(key, {"share": share, "budget_ms": share * full_ms, "runs": {}})
        res_path = out / f"result-{key}.json"
        if not res_path.exists():
            search_checkpoint(ckpt, [a.lut], [share * full_ms], EvolutionConfig(
                population=a.population, generations=a.generations, parents=min(10, a.population), seed=0),
                res_path, resume=True)
        res = load_result(res_path)
        win = space.validate(res["top"][0]["arch"]["genes"])
        if "winner_measured_ms" not in b:
            # measure the winner and the distinct uniform archs predicted near it, interleaved
            wp = res["top"][0]["latency_ms"]["cpu"]
            cands = [r for r in ratios if 0.85 * wp <= pred.predict_ms(space.layer_specs(uniform_archs[r])) <= 1.4 * wp] or [
                r for r in ratios if pred.predict_ms(space.layer_specs(uniform_archs[r])) >= wp][:3]
            seen, uni = set(), []
            for r in cands:
                v = space.vector(uniform_archs[r])
                if v not in seen:
                    seen.add(v)
                    uni.append(r)
            models = [onnx_model(space, build_net(space, win).eval()).SerializeToString()] + [
                onnx_model(space, build_net(space, uniform_archs[r]).eval()).SerializeToString() for r in uni]
            m = measure_many("cpu", models)
            b["winner_measured_ms"] = m[0].median_ms
            b["winner_predicted_ms"] = res["top"][0]["latency_ms"]["cpu"]
            b["uniform_measured_ms"] = {f"{r:g}": mm.median_ms for r, mm in zip(uni, m[1:])}
            rival = next((r for r in uni if b["uniform_measured_ms"][f"{r:g}"] >= m[0].median_ms), uni[-1])
            b["rival_ratio"] = rival
            b["winner_search_acc"] = res["top"][0]["accuracy"]
            b["search_uniform_baseline"] = {"ratio": res["uniform_baseline"]["ratio"],
                                            "accuracy": res["uniform_baseline"]["accuracy"]}
            write_json_atomic(rep_path, report)
        for name, arch in (("searched", win), ("uniform", uniform_archs[b["rival_ratio"]])):
            for seed in range(a.seeds):
                rk = f"{name}-s{seed}"
                if rk in b["runs"]:
                    continue
                t0 = time.perf_counter()
                r = train_plain(space, arch, data, epochs=a.epochs, seed=seed, out=out / f"{key}-{rk}.pt",
                                resume=True, progress=False)
                b["runs"][rk] = {"test_acc": r.test_acc, "seconds": time.perf_counter() - t0}
                write_json_atomic(rep_path, report)
        if a.remeasure:
            remeasure(space, pred, b, win, uniform_archs, res["uniform_baseline"]["ratio"], a.remeasure)
            write_json_atomic(rep_path, report)
        acc = {n: [b["runs"][f"{n}-s{s}"]["test_acc"] for s in range(a.seeds)] for n in ("searched", "uniform")}
        b["summary"] = {n: {"mean": statistics.mean(v), "stdev": statistics.stdev(v) if len(v) > 1 else 0.0,
                            "min": min(v), "max": max(v)} for n, v in acc.items()}
        b["summary"]["gain_points"] = 100 * (b["summary"]["searched"]["mean"] - b["summary"]["uniform"]["mean"])
        write_json_atomic(rep_path, report)
        print(key, json.dumps(b["summary"]), flush=True)
    report["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report["elapsed_s_this_call"] = time.perf_counter() - t_start
    write_json_atomic(rep_path, report)
    print(json.dumps(report, indent=2))


def remeasure(space, pred, b: dict, win: dict, uniform_archs: dict, baseline_ratio: float, rounds: int) -> None:
    """Median of ``rounds`` interleaved measurements of the winner, the rival and the uniform arch the
    search compared against, stored as ``b["remeasured"]`` with the prediction error of each."""
    archs = {"winner": win, "rival": uniform_archs[b["rival_ratio"]], "budget_uniform": uniform_archs[baseline_ratio]}
    models = [onnx_model(space, build_net(space, arch).eval()).SerializeToString() for arch in archs.values()]
    ms = [[m.median_ms for m in measure_many("cpu", models)] for _ in range(rounds)]
    out = {"rounds": rounds, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "budget_uniform_ratio": baseline_ratio}
    for i, (name, arch) in enumerate(archs.items()):
        measured = statistics.median(r[i] for r in ms)
        predicted = pred.predict_ms(space.layer_specs(arch))
        out[name] = {"measured_ms": measured, "rounds_ms": [r[i] for r in ms], "predicted_ms": predicted,
                     "error_pct": 100 * (predicted / measured - 1), "meets": measured <= b["budget_ms"]}
    b["remeasured"] = out


if __name__ == "__main__":
    main()
