"""Does the search buy accuracy? Searched archs vs uniform-width archs, both trained from scratch.

On Fashion-MNIST (resized to the quickstart space's 8x8, or to --resolution R with a --lut built for
that space; a class-balanced subset: CPU-sized), at budgets of about 30/50/70% of the full
network's predicted `cpu` latency:
  1. a PruningNet is trained once (train's loop) on the subset;
  2. one search per budget (the real fitness: BN-recalibrated PruningNet networks on sub-val);
  3. the search's best `--verify K` archs and the uniform archs near the budget are measured end to
     end on this CPU (interleaved, `--rounds` times); the winner is the first of the K that meets the
     budget measured (as `search --verify` picks it), the rival the narrowest uniform ratio whose
     *measured* latency is >= the winner's (equal or higher latency, so the comparison never favours
     the search); `--remeasure N` repeats that N times later, on a quiet machine, and trains its
     rival too when it differs (`--search-only` first: searches side by side, measurement alone);
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
from prune_lut.latency.measure import measure_beside, measure_many
from prune_lut.latency.predictor import Predictor
from prune_lut.latency.validate import reference_drift
from prune_lut.files import read_json, write_json
from prune_lut.pruning.data import load_data
from prune_lut.pruning.evolution import EvolutionConfig
from prune_lut.quickstart import SPACE
from prune_lut.tables.networks import onnx_bytes
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
                    help="measure each budget's winner and the uniform archs near it again, interleaved, N times "
                    "(on a quiet machine: the first measurement may have shared the CPU); when that picks another "
                    "rival, it is trained too (runs 'quiet-uniform-sK')")
    ap.add_argument("--verify", type=int, default=1, metavar="K",
                    help="measure the search's best K archs (with the uniform archs near the budget, interleaved, "
                    "--rounds times); the winner is the first in search order whose measured median meets the "
                    "budget, as `search --verify` picks it")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved measurement rounds of the first measurement")
    ap.add_argument("--search-only", action="store_true",
                    help="stop after the searches (run them side by side, then measure on the idle machine)")
    ap.add_argument("--measure-only", action="store_true", help="stop after the measurements (no retraining)")
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
    train_pruningnet(space, data, epochs=a.pn_epochs, out=ckpt, resume=True, progress=False, score_archs="none",
                     latency_range=lat_range, lut=a.lut if lat_range else None)
    report["pruningnet_s"] = report.get("pruningnet_s") or time.perf_counter() - t0

    uniform_archs = {r: space.uniform(r) for r in sorted(set(space.grid))}
    for share in (float(s) for s in a.budgets.split(",") if s):  # --budgets "": train the PruningNet only
        key = f"{share:.2f}"
        b = report["budgets"].setdefault(key, {"share": share, "budget_ms": share * full_ms, "runs": {}})
        res_path = out / f"result-{key}.json"
        if not res_path.exists():
            search_checkpoint(ckpt, [a.lut], [share * full_ms], EvolutionConfig(
                population=a.population, generations=a.generations, parents=min(10, a.population), seed=0),
                res_path, resume=True)
        if a.search_only:
            continue
        res = load_result(res_path)
        top = res["top"][:max(1, a.verify)]
        if "winner_measured_ms" not in b:
            pick, cand_ms, uni_ms, rounds_ms, rival = measure_rival(
                space, pred, top, b["budget_ms"], uniform_archs, a.rounds)
            e = top[pick]
            b.update({"winner_rank": e["rank"], "winner_genes": e["arch"]["genes"],
                      "winner_measured_ms": cand_ms[pick], "winner_predicted_ms": e["latency_ms"]["cpu"],
                      "candidates": [{"rank": c["rank"], "accuracy": c["accuracy"], "predicted_ms": c["latency_ms"]["cpu"],
                                      "measured_ms": m} for c, m in zip(top, cand_ms)],
                      "uniform_measured_ms": uni_ms, "rounds_ms": rounds_ms, "rounds": a.rounds,
                      "reference": drift(pred, rounds_ms),
                      "rival_ratio": rival, "winner_search_acc": e["accuracy"],
                      "search_uniform_baseline": {"ratio": res["uniform_baseline"]["ratio"],
                                                  "accuracy": res["uniform_baseline"]["accuracy"]}})
            write_json(rep_path, report)
        # reports written before --verify measured only the search's best
        genes = b.get("winner_genes") or res["top"][0]["arch"]["genes"]
        win, wp = space.check_arch(genes), b["winner_predicted_ms"]
        if a.remeasure:
            _, (win_ms,), uni_ms, rounds_ms, rival = measure_rival(
                space, pred, [{"arch": {"genes": genes}, "latency_ms": {"cpu": wp}}], b["budget_ms"], uniform_archs,
                a.remeasure)
            b["remeasured"] = {"rounds": a.remeasure, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                               "winner_ms": win_ms, "winner_error_pct": 100 * (wp / win_ms - 1),
                               "winner_meets": win_ms <= b["budget_ms"], "uniform_ms": uni_ms,
                               "rounds_ms": rounds_ms, "rival_ratio": rival, "reference": drift(pred, rounds_ms)}
            write_json(rep_path, report)
        if a.measure_only:
            continue
        # the rival by the first measurement and, when a quiet re-measurement picks another, that one too
        rivals = {"uniform": b["rival_ratio"]}
        quiet = b.get("remeasured", {}).get("rival_ratio")
        if quiet is not None and quiet != b["rival_ratio"]:
            rivals["quiet-uniform"] = quiet
        for name, arch in [("searched", win)] + [(n, uniform_archs[r]) for n, r in rivals.items()]:
            for seed in range(a.seeds):
                rk = f"{name}-s{seed}"
                if rk in b["runs"]:
                    continue
                t0 = time.perf_counter()
                r = train_plain(space, arch, data, epochs=a.epochs, seed=seed, out=out / f"{key}-{rk}.pt",
                                resume=True, progress=False)
                b["runs"][rk] = {"test_acc": r.test_acc, "seconds": time.perf_counter() - t0}
                write_json(rep_path, report)
        acc = {n: [b["runs"][f"{n}-s{s}"]["test_acc"] for s in range(a.seeds)] for n in ("searched", *rivals)}
        b["summary"] = {n: {"mean": statistics.mean(v), "stdev": statistics.stdev(v) if len(v) > 1 else 0.0,
                            "min": min(v), "max": max(v)} for n, v in acc.items()}
        for n in rivals:
            suffix = "" if n == "uniform" else "_" + n.replace("-", "_")
            b["summary"]["gain_points" + suffix] = 100 * (b["summary"]["searched"]["mean"] - b["summary"][n]["mean"])
        write_json(rep_path, report)
        print(key, json.dumps(b["summary"]), flush=True)
    report["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report["elapsed_s_this_call"] = time.perf_counter() - t_start
    write_json(rep_path, report)
    print(json.dumps(report, indent=2))


def drift(pred, rounds_ms: list[list[float]]) -> dict:
    """The reference net's median over the rounds (the last column) against the table's anchor."""
    return reference_drift(pred.lut, statistics.median(r[-1] for r in rounds_ms))


def measure_rival(space, pred, cands: list[dict], budget_ms: float, uniform_archs: dict, rounds: int):
    """Measure the search's candidates (result entries, best first) and the distinct uniform archs
    predicted near them, interleaved, ``rounds`` times; medians over rounds. The winner is the first
    candidate whose measured latency meets ``budget_ms`` (the last one when none does); the rival is the
    narrowest uniform ratio whose measured latency is >= the winner's (the widest measured when none is).
    The table's reference net is measured after every round, beside the first candidate: its drift from
    the time the predictions are anchored to goes in the report (``reference``; runs before session 5's
    end measured it among all the nets, which slows the full net by up to 20%).
    Returns (winner index, [candidate ms], {ratio: ms}, per-round ms [*candidates, *uniform, reference],
    rival ratio)."""
    def ms(r):
        return pred.predict_ms(space.layer_specs(uniform_archs[r]))

    preds = [c["latency_ms"]["cpu"] for c in cands]
    lo, hi = 0.85 * min(preds), 1.4 * max(max(preds), budget_ms)
    ratios = sorted(uniform_archs)
    near = [r for r in ratios if lo <= ms(r) <= hi] or [r for r in ratios if ms(r) >= min(preds)][:3]
    seen, uni = set(), []
    for r in near:
        v = space.vector(uniform_archs[r])
        if v not in seen:
            seen.add(v)
            uni.append(r)
    archs = [space.check_arch(c["arch"]["genes"]) for c in cands] + [uniform_archs[r] for r in uni]
    models = [onnx_bytes(space, arch) for arch in archs]
    ref = onnx_bytes(space, space.full())
    per_round = [[m.median_ms for m in measure_many("cpu", models)] + [measure_beside("cpu", ref, models[0]).median_ms]
                 for _ in range(rounds)]
    med = [statistics.median(col) for col in zip(*per_round)]
    cand_ms, uni_ms = med[:len(cands)], {f"{r:g}": t for r, t in zip(uni, med[len(cands):-1])}
    pick = next((i for i, t in enumerate(cand_ms) if t <= budget_ms), len(cands) - 1)
    rival = next((r for r in uni if uni_ms[f"{r:g}"] >= cand_ms[pick]), uni[-1])
    return pick, cand_ms, uni_ms, per_round, rival


if __name__ == "__main__":
    main()
