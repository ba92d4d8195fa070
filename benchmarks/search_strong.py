"""Where pruning matters: searched vs uniform vs random-in-budget archs at strong latency budgets.

Fashion-MNIST at 14x14 by default (``--data``, ``--resolution``; the small-input MobileNetV2 space at
multiple 8), the whole training set by default. Budgets over the strong end of the space, on a table
calibrated on this machine (``--lut``, ``prune-lut calibrate`` first, or built here): ``--budgets`` as
multiples of the smallest arch's predicted latency (``s1.3``) or shares of the full net's (``f0.35``).
Per budget:
  1. one search (MetaPruning's evolution, the PruningNet fitness);
  2. a control: the most accurate of N random archs inside the budget (N = the search's evaluation
     count; drawn as the search's own initial population is, scored by the same fitness);
  3. the search's best ``--verify`` archs, the uniform archs near the budget and the control measured
     end to end here, interleaved, ``--rounds`` times: the winner is the first of the search's best
     that meets the budget as measured; the uniform rival the narrowest uniform arch measured at
     or above the winner's latency;
  4. winner, uniform rival and control trained from scratch with ``--seeds`` seeds (train_plain, the
     whole training set), test accuracy on the whole test set; mean, spread, Welch's t and p.
The full net is trained with ``--full-seeds`` seeds beside them (how much the uniform arch loses).
Everything resumes: every training run checkpoints, report.json is rewritten after each step. The
from-scratch runs of every budget are trained after all budgets are searched and measured, ``--jobs``
at a time (processes: on a GPU they share it, on CPUs they share the cores).

    python benchmarks/search_strong.py --lut runs/cpu14-calibrated.json.gz --out runs/strong
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch
from scipy.stats import ttest_ind

from prune_lut.files import read_json, write_json
from prune_lut.latency.frame import frame_of
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.measure import measure_many
from prune_lut.latency.predictor import Predictor
from prune_lut.pruning.data import load_data
from prune_lut.pruning.evolution import Evolution, EvolutionConfig
from prune_lut.pruning.scoring import GeneratedNets
from prune_lut.pruning.search import (
    Constraints,
    LatencyBudget,
    load_result,
    search_checkpoint,
)
from prune_lut.pruning.search.fitness import PruningNetFitness
from prune_lut.pruning.train import DRAWS, RULES, load_checkpoint, train_plain, train_pruningnet
from prune_lut.tables.networks import onnx_bytes
from reference_time import reference_ms  # benchmarks/ (this script's folder)
from small_space import small_space


def budget_ms(spec: str, smallest: float, full: float) -> float:
    """``s1.3`` -> 1.3 x the smallest arch's latency; ``f0.35`` -> 0.35 x the full net's."""
    kind, x = spec[0], float(spec[1:])
    return x * (smallest if kind == "s" else full)


def random_control(space, constraints, fitness, n: int, seed: int) -> tuple[dict, float, int]:
    """The most accurate of ``n`` distinct random archs inside the budgets (the evolution's own random
    draws: level draws, then narrow-end draws), scored by ``fitness``."""
    evo = Evolution({k: g.choices for k, g in space.genes.items()}, fitness, constraints.feasible,
                    EvolutionConfig(population=max(2, n), generations=1, parents=1, seed=seed + 1000))
    cands = evo.candidates()
    scores = fitness(cands)
    best = max(range(len(cands)), key=lambda i: scores[i])
    return cands[best], scores[best], len(cands)


def measure_all(space, archs: dict[str, dict], rounds: int) -> dict[str, float]:
    """Median end-to-end ms of each arch over ``rounds`` interleaved runs on the cpu profile."""
    names = list(archs)
    models = [onnx_bytes(space, archs[n]) for n in names]
    per = [[m.median_ms for m in measure_many("cpu", models)] for _ in range(rounds)]
    return {n: statistics.median(r[i] for r in per) for i, n in enumerate(names)}


_WORKER: dict = {}


def _init_worker(data_kw: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER["data"] = load_data(**data_kw)  # the same split as the parent's: the same arguments and seed


def _train(space, genes: dict, epochs: int, seed: int, out: Path, data=None) -> dict:
    t0 = time.perf_counter()
    r = train_plain(space, genes, _WORKER["data"] if data is None else data, epochs=epochs, seed=seed, out=out, resume=True,
                    progress=False)
    return {"test_acc": r.test_acc, "seconds": time.perf_counter() - t0}


def train_all(jobs: list[tuple], space, data, data_kw: dict, epochs: int, n: int):
    """Yield (tag, result) of every from-scratch run in ``jobs`` ((tag, genes, seed, checkpoint)) as it
    finishes: in this process when ``n`` is 1, else ``n`` processes, each loading the data once."""
    if n <= 1 or len(jobs) <= 1:
        for tag, genes, seed, out in jobs:
            yield tag, _train(space, genes, epochs, seed, out, data)
        return
    threads = max(1, (os.cpu_count() or 1) // n)
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                             initargs=(data_kw, threads)) as pool:
        futs = {pool.submit(_train, space, genes, epochs, seed, out): tag for tag, genes, seed, out in jobs}
        for f in as_completed(futs):
            yield futs[f], f.result()


def summarize(runs: dict, names: list[str], seeds: int) -> dict:
    acc = {n: [runs[f"{n}-s{s}"]["test_acc"] for s in range(seeds) if f"{n}-s{s}" in runs] for n in names}
    out = {n: {"mean": statistics.mean(v), "stdev": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v),
               "values": v} for n, v in acc.items() if v}
    for rival in ("uniform", "random"):
        a, b = acc.get("searched", []), acc.get(rival, [])
        if len(a) > 1 and len(b) > 1:
            t = ttest_ind(a, b, equal_var=False)
            out[f"vs_{rival}"] = {"gain_points": 100 * (statistics.mean(a) - statistics.mean(b)),
                                  "welch_t": float(t.statistic), "p": float(t.pvalue)}
    return out


def retrain(a, report: dict, space, data, data_kw: dict, out: Path) -> None:
    """Every budget's winner, uniform rival and control, and the full net, trained from scratch
    (``--jobs`` at a time); each run lands in report.json as it finishes, then the summaries."""
    rep_path, specs = out / "report.json", a.budgets.split(",")
    full_runs = report.setdefault("full_runs", {})
    jobs = [((None, f"full-s{seed}"), space.full(), seed, out / f"full-s{seed}.pt")
            for seed in range(a.full_seeds) if f"full-s{seed}" not in full_runs]
    for spec in specs:
        b = report["budgets"][spec]
        for name, arch in (("searched", b["winner"]), ("uniform", b["uniform"]), ("random", b["control"])):
            jobs += [((spec, f"{name}-s{seed}"), arch["genes"], seed, out / f"{spec}-{name}-s{seed}.pt")
                     for seed in range(a.seeds) if f"{name}-s{seed}" not in b["runs"]]
    for (spec, key), r in train_all(jobs, space, data, data_kw, a.epochs, a.jobs):
        (report["budgets"][spec]["runs"] if spec else full_runs)[key] = r
        write_json(rep_path, report)
    for spec in specs:
        b = report["budgets"][spec]
        b["summary"] = summarize(b["runs"], ["searched", "uniform", "random"], a.seeds)
        write_json(rep_path, report)
        print(spec, json.dumps(b["summary"]), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", required=True, help="cpu table of the space, calibrated on this machine")
    ap.add_argument("--out", default="runs/strong")
    ap.add_argument("--data", default="fashion-mnist", help="fashion-mnist[:DIR]")
    ap.add_argument("--resolution", type=int, default=14)
    ap.add_argument("--jobs", type=int, default=1, help="from-scratch runs trained at once, one process each")
    ap.add_argument("--train-per-class", type=int, default=0, help="0: the whole training set")
    ap.add_argument("--val-per-class", type=int, default=300, help="sub-validation images per class (the fitness)")
    ap.add_argument("--pn-epochs", type=int, default=6)
    ap.add_argument("--pn-latency-range", help="LO,HI: train the PruningNet on archs predicted between these shares "
                    "of the full net's latency (default: the whole space)")
    ap.add_argument("--epochs", type=int, default=3, help="from-scratch epochs per arch")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--full-seeds", type=int, default=2)
    ap.add_argument("--budgets", default="s1.3,s2,f0.35")
    ap.add_argument("--population", type=int, default=50)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--verify", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pn-draws", choices=DRAWS, help="the PruningNet's random archs (train --draws)")
    ap.add_argument("--pn-rule", choices=RULES, help="the PruningNet's archs per step (train --rule)")
    ap.add_argument("--pn-random-archs", type=int, help="random archs per step (train --random-archs)")
    ap.add_argument("--pn-more-epochs", type=int, help="train at most this many more PruningNet epochs in this run "
                    "(0: use the checkpoint as it is, short of --pn-epochs)")
    ap.add_argument("--pruningnet-only", action="store_true", help="stop after training the PruningNet")
    ap.add_argument("--search-only", action="store_true", help="stop before measuring and retraining")
    ap.add_argument("--measure-only", action="store_true", help="stop before retraining (measure on a quiet machine)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rep_path = out / "report.json"
    report = read_json(rep_path) if rep_path.exists() else {}
    data_kw = {"spec": a.data, "resolution": a.resolution, "train_per_class": a.train_per_class or None,
               "val_per_class": a.val_per_class, "seed": 0}
    data = load_data(**data_kw)
    space = small_space(data)
    lut = LUT.load(a.lut, space_hash=space.hash)
    pred = Predictor(lut)
    ms = lambda arch: pred.predict_ms(space.layer_specs(arch))  # noqa: E731
    smallest, full = ms(space.smallest()), ms(space.full())
    for spec in a.budgets.split(","):
        if not smallest < (x := budget_ms(spec, smallest, full)) < full:
            raise SystemExit(f"budget {spec} is {x:.4g} ms, outside the space "
                             f"({smallest:.4g} .. {full:.4g} ms on {a.lut}): choose one between the smallest "
                             "arch's and the full net's")
    report.update({"command": " ".join(sys.argv), "host": platform.node(), "settings": vars(a), "frame": frame_of(lut),
                   "smallest_ms": smallest, "full_ms": full, "budgets": report.get("budgets", {})})
    ckpt = out / "pruningnet.pt"
    t0 = time.perf_counter()
    rng = tuple(float(x) * full for x in a.pn_latency_range.split(",")) if a.pn_latency_range else None
    train_pruningnet(space, data, epochs=a.pn_epochs, out=ckpt, resume=True, progress=False, score_archs="full",
                     latency_range=rng, lut=a.lut if rng else None, stop_after=a.pn_more_epochs,
                     draws=a.pn_draws, rule=a.pn_rule, random_archs=a.pn_random_archs)
    report.setdefault("pruningnet", {"seconds": time.perf_counter() - t0,
                                     "history": load_checkpoint(ckpt).header["history"]})
    write_json(rep_path, report)
    if a.pruningnet_only:
        return
    uniform = {}
    for r in sorted(set(space.grid)):
        uniform.setdefault(space.vector(space.uniform(r)), (r, space.uniform(r)))
    for spec in a.budgets.split(","):
        b = report["budgets"].setdefault(spec, {"budget_ms": budget_ms(spec, smallest, full), "runs": {}})
        res_path = out / f"result-{spec}.json"
        if not res_path.exists():
            search_checkpoint(ckpt, [a.lut], [b["budget_ms"]], EvolutionConfig(
                population=a.population, generations=a.generations, parents=min(10, a.population), seed=0),
                res_path, resume=True)
        res = load_result(res_path)
        if "control" not in b:
            ck = load_checkpoint(ckpt)
            fit = PruningNetFitness(GeneratedNets(ck.pruningnet, ck.load_data()))  # as the search scores
            cons = Constraints(space, [LatencyBudget("cpu", a.lut, pred, b["budget_ms"])])
            arch, acc, n = random_control(space, cons, fit, res["evaluations"], 0)
            b["control"] = {"genes": arch, "accuracy": acc, "drawn": n, "predicted_ms": ms(arch)}
            write_json(rep_path, report)
        if a.search_only:
            continue
        if "measured" not in b:
            top = res["top"][:a.verify]
            above = sorted((u for u in uniform.values() if ms(u[1]) >= 0.8 * b["budget_ms"]), key=lambda u: ms(u[1]))
            near = {f"x{r:g}": u for r, u in above if ms(u) <= 1.5 * b["budget_ms"]} or {
                f"x{r:g}": u for r, u in above[:3]}
            archs = {**{f"top{e['rank']}": space.check_arch(e["arch"]["genes"]) for e in top}, **near,
                     "random": b["control"]["genes"]}
            ref0 = reference_ms()["median_ms"]
            m = measure_all(space, archs, a.rounds)
            b["reference_ms"] = [ref0, reference_ms()["median_ms"]]  # MobileNetV2-224, before and after
            win = next((e for e in top if m[f"top{e['rank']}"] <= b["budget_ms"]), top[-1])
            wm = m[f"top{win['rank']}"]
            rival = min((k for k in near if m[k] >= wm), key=lambda k: m[k], default=max(near, key=lambda k: m[k]))
            b.update({"measured": m, "winner": {"rank": win["rank"], "genes": win["arch"]["genes"],
                                                "accuracy": win["accuracy"], "predicted_ms": win["latency_ms"]["cpu"],
                                                "measured_ms": wm},
                      "uniform": {"name": rival, "genes": near[rival], "predicted_ms": ms(near[rival]),
                                  "measured_ms": m[rival]},
                      "search_uniform_baseline": res["uniform_baseline"] and {
                          k: res["uniform_baseline"][k] for k in ("ratio", "accuracy")}})
            write_json(rep_path, report)
        if a.measure_only:
            continue
        b["fitness"] = {"searched": b["winner"]["accuracy"], "random": b["control"]["accuracy"]}
    if not (a.search_only or a.measure_only):
        retrain(a, report, space, data, data_kw, out)
    report["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(rep_path, report)


if __name__ == "__main__":
    main()
