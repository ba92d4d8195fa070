"""What the search relies on: does the PruningNet's accuracy rank archs like training them does?

CPU-sized (Fashion-MNIST at 14x14, a class-balanced subset, the whole test set), the MobileNetV2
small-input space at multiple 8. Two sets of archs, each trained from scratch for as many epochs as
the PruningNet (equal epochs), with its sub-validation split held out:
  * ``spread``: 20 random archs spread over the space's size range (``train_fmnist_rank.spread_archs``),
    one seed: the ratio of generated to scratch test accuracy;
  * ``equal``: 20 archs whose predicted latency (``--lut``) lies within +-5% of ``--budget-x`` times the
    smallest arch's, ``--equal-seeds`` seeds: the rank correlation that decides a search at one budget,
    beside its ceiling (seed against seed) and the proxies MACs and params, which cannot tell such archs
    apart;
  * ``uniform``: the two uniform archs whose predicted latency brackets that target, as many seeds: the
    headroom, how much any arch of the equal set (the best one, the PruningNet's pick) gains over uniform
    width scaling at that latency.
Commands (each resumes; every checkpoint and results file stays under --out):

    python benchmarks/pruningnet_quality.py scratch --lut LUT --out runs/q
    python benchmarks/pruningnet_quality.py variant --lut LUT --out runs/q --name sandwich --rule sandwich
    python benchmarks/pruningnet_quality.py report --lut LUT --out runs/q
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy.stats import kendalltau, spearmanr, ttest_ind

sys.path.insert(0, str(Path(__file__).parent))
from small_space import small_space  # noqa: E402
from train_fmnist_rank import spread_archs  # noqa: E402

from prune_lut.files import read_json, write_json  # noqa: E402
from prune_lut.latency.lutfile import LUT  # noqa: E402
from prune_lut.latency.predictor import Predictor  # noqa: E402
from prune_lut.pruning.data import load_data  # noqa: E402
from prune_lut.pruning.evolution import Evolution, EvolutionConfig  # noqa: E402
from prune_lut.pruning.scoring import GeneratedNets  # noqa: E402
from prune_lut.pruning.space import ChannelSpace  # noqa: E402
from prune_lut.pruning.train import (  # noqa: E402
    DRAWS,
    VAL_RECAL_BATCHES,
    load_checkpoint,
    train_plain,
    train_pruningnet,
)


def equal_latency_archs(space: ChannelSpace, predict, target_ms: float, n: int, seed: int,
                        tol: float = 0.05) -> list[dict[str, int]]:
    """``n`` distinct archs predicted within ``tol`` of ``target_ms``: level draws (random sizes, genes
    around them; see ``Evolution.level_arch``) kept when they land inside the band."""
    evo = Evolution({k: g.choices for k, g in space.genes.items()}, lambda a: [0.0] * len(a), lambda a: True,
                    EvolutionConfig(seed=seed))
    out, seen = [], set()
    for _ in range(200000):
        arch = evo.level_arch() if len(out) % 2 else evo.random_arch(cap=evo.rng.random())
        v = space.vector(arch)
        if v not in seen and abs(predict(arch) / target_ms - 1) <= tol:
            seen.add(v)
            out.append(arch)
            if len(out) == n:
                return out
    raise SystemExit(f"only {len(out)} archs within +-{tol:.0%} of {target_ms:.4g} ms")


def bracketing_uniform(space: ChannelSpace, predict, target_ms: float) -> list[dict[str, int]]:
    """The widest uniform arch predicted under ``target_ms`` and the narrowest one at or over it."""
    archs = sorted({space.vector(space.uniform(r)): space.uniform(r) for r in space.grid}.values(), key=predict)
    i = next((i for i, x in enumerate(archs) if predict(x) >= target_ms), len(archs) - 1)
    return archs[max(i - 1, 0):i + 1]


def setup(a):
    data = load_data(a.data, resolution=a.resolution, train_per_class=a.train_per_class or None,
                     test_per_class=a.test_per_class, val_per_class=a.val_per_class, seed=a.seed)
    space = small_space(data)
    pred = Predictor(LUT.load(a.lut, space_hash=space.hash))
    predict = lambda arch: pred.predict_ms(space.layer_specs(arch))  # noqa: E731
    small_ms = predict(space.smallest())
    target = a.budget_x * small_ms
    archs = {"spread": spread_archs(space, a.archs, a.seed + 1),
             "equal": equal_latency_archs(space, predict, target, a.archs, a.seed + 2),
             "uniform": bracketing_uniform(space, predict, target)}
    meta = {"space": space.describe(), "space_hash": space.hash, "data": data.describe(), "lut": a.lut,
            "smallest_ms": small_ms, "full_ms": predict(space.full()), "equal_target_ms": target,
            "machine": f"{platform.node()} {platform.machine()}, {torch.get_num_threads()} torch threads"}
    return data, space, predict, archs, meta


def load(path: Path) -> dict:
    return read_json(path) if path.exists() else {}


def scratch(a) -> None:
    """Every arch of both sets trained from scratch (equal epochs), plus the full-width plain net."""
    data, space, predict, archs, meta = setup(a)
    out = Path(a.out)
    results = out / a.results  # two processes (one per core) write two files: see --keys
    res = load(results)
    res.update(meta)
    opts = dict(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, resume=True, progress=False, holdout=True)
    # the equal-latency set first: the ranking the search relies on
    jobs = [("full", 0, space.full(), 0)] + [(kind, i, x, s) for s in range(a.equal_seeds)
                                             for kind in ("equal", "uniform") for i, x in enumerate(archs[kind])]
    jobs += [("spread", i, x, 0) for i, x in enumerate(archs["spread"])]
    for kind, i, arch, seed in jobs:
        key = f"{kind}-{i:02d}-s{seed}"
        if key in res.get("runs", {}) or not any(fnmatch.fnmatch(key, k) for k in a.keys.split(",")):
            continue
        t = time.time()
        r = train_plain(space, arch, data, seed=seed, out=out / "scratch" / f"{key}.pt", **opts)
        res.setdefault("runs", {})[key] = {"genes": arch, "macs": space.macs(arch), "params": space.params(arch),
                                           "predicted_ms": predict(arch), "test": r.test_acc,
                                           "val": r.history[-1].get("val_acc"), "seconds": round(time.time() - t, 1)}
        write_json(results, res)
        print(f"{key}: {space.macs(arch) / 1e6:.2f} M MACs, {predict(arch):.4f} ms, test {r.test_acc:.4f}", flush=True)


def variant(a) -> None:
    """Train one PruningNet variant (resumable), then score every arch with its generated weights."""
    data, space, predict, archs, meta = setup(a)
    out = Path(a.out) / "variants" / a.name
    out.mkdir(parents=True, exist_ok=True)
    t = time.time()
    ck_path = out / "pruningnet.pt"
    train_pruningnet(space, data, epochs=a.pn_epochs or a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                     out=ck_path, resume=True, progress=False, rule=a.rule, random_archs=a.random_archs,
                     distill=None if a.distill is None else bool(a.distill), bn=a.bn, draws=a.draws,
                     score_archs="none")
    res = load(out / "scores.json")
    res.update({**meta, "name": a.name, "command": " ".join(sys.argv)})
    res.setdefault("train_s", round(time.time() - t, 1))
    ck = load_checkpoint(ck_path)
    res["sampler"], res["history"] = ck.header["sampler"], ck.header["history"]
    nets = GeneratedNets(ck.pruningnet, data, VAL_RECAL_BATCHES, seed=a.seed)
    sets = {"full": [space.full()], **archs}
    for kind, xs in sets.items():
        for i, arch in enumerate(xs):
            key = f"{kind}-{i:02d}"
            if key in res.get("scores", {}):
                continue
            res.setdefault("scores", {})[key] = {
                "val": nets.accuracy(arch, "val"), "test": nets.accuracy(arch, "test")}
        write_json(out / "scores.json", res)
    print(json.dumps(figures(load_scratch(Path(a.out)), res), indent=1))


def _corr(x, y) -> dict:
    return {"spearman": float(spearmanr(x, y)[0]), "kendall": float(kendalltau(x, y)[0])}


def figures(scr: dict, var: dict) -> dict:
    """The targets' figures for one variant against the scratch runs it can be compared with."""
    runs, sc = scr.get("runs", {}), var.get("scores", {})
    out: dict = {"name": var.get("name"), "train_s": var.get("train_s")}
    if "full-00-s0" in runs and "full-00" in sc:
        out["full_ratio"] = sc["full-00"]["test"] / runs["full-00-s0"]["test"]
    spread = [k for k in sorted(sc) if k.startswith("spread") and f"{k}-s0" in runs]
    if spread:
        ratios = [sc[k]["test"] / runs[f"{k}-s0"]["test"] for k in spread]
        out["spread"] = {"n": len(spread), "median_ratio": statistics.median(ratios), "min_ratio": min(ratios),
                         "pn_val_vs_scratch": _corr([sc[k]["val"] for k in spread],
                                                    [runs[f"{k}-s0"]["test"] for k in spread]),
                         "macs_vs_scratch": _corr([runs[f"{k}-s0"]["macs"] for k in spread],
                                                  [runs[f"{k}-s0"]["test"] for k in spread])}
    equal = [k for k in sorted(sc) if k.startswith("equal") and f"{k}-s0" in runs and f"{k}-s1" in runs]
    if len(equal) >= 3:
        seeds = [s for s in range(100) if all(f"{k}-s{s}" in runs for k in equal)]
        acc = {k: [runs[f"{k}-s{s}"]["test"] for s in seeds] for k in equal}
        mean = [statistics.mean(acc[k]) for k in equal]
        pairs = [_corr([acc[k][i] for k in equal], [acc[k][j] for k in equal])["spearman"]
                 for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
        r1 = statistics.mean(pairs)
        out["equal"] = {"n": len(equal), "seeds": len(seeds),
                        "pn_val_vs_scratch_mean": _corr([sc[k]["val"] for k in equal], mean),
                        "pn_test_vs_scratch_mean": _corr([sc[k]["test"] for k in equal], mean),
                        "ceiling_seed0_vs_seed1": _corr([acc[k][0] for k in equal], [acc[k][1] for k in equal]),
                        "ceiling_seed_vs_seed_mean_spearman": r1,
                        # Spearman-Brown: how well the mean of len(seeds) runs agrees with another such mean
                        "reliability_of_mean": len(seeds) * r1 / (1 + (len(seeds) - 1) * r1),
                        "macs_vs_scratch_mean": _corr([runs[f"{k}-s0"]["macs"] for k in equal], mean),
                        "params_vs_scratch_mean": _corr([runs[f"{k}-s0"]["params"] for k in equal], mean),
                        "scratch_mean_range": [min(mean), max(mean)],
                        "median_ratio": statistics.median(sc[k]["test"] / m for k, m in zip(equal, mean))}
        out["headroom"] = headroom(runs, sc, acc, seeds)
    return out


def headroom(runs: dict, sc: dict, acc: dict, seeds: list[int]) -> dict:
    """What picking among the equal set gains over the uniform archs at its latency, seed for seed.

    The best arch is chosen on the first two seeds and scored on the others, so its figure carries no
    winner's curse; the PruningNet's pick (best sub-val fitness) is scored on every seed."""
    uni = {k: [runs[f"{k}-s{s}"]["test"] for s in seeds] for k in sorted({r.rsplit("-s", 1)[0] for r in runs})
           if k.startswith("uniform") and all(f"{k}-s{s}" in runs for s in seeds)}
    if not uni:
        return {}

    def vs(a: list[float], b: list[float]) -> dict:
        t = ttest_ind(a, b, equal_var=False) if len(a) > 1 and len(b) > 1 else None
        return {"gain_points": 100 * (statistics.mean(a) - statistics.mean(b)),
                "welch_t": t and float(t.statistic), "p": t and float(t.pvalue)}

    out: dict = {"uniform": {k: {"predicted_ms": runs[f"{k}-s0"]["predicted_ms"], "mean": statistics.mean(v),
                                 "values": v} for k, v in uni.items()}}
    means = {k: statistics.mean(v) for k, v in acc.items()}
    out["equal_archs_above_uniform"] = {k: sum(m > statistics.mean(v) for m in means.values()) for k, v in uni.items()}
    pick = max(acc, key=lambda k: sc[k]["val"])
    out["pruningnet_pick"] = {"arch": pick, "mean": means[pick],
                              "vs": {k: vs(acc[pick], v) for k, v in uni.items()}}
    if len(seeds) > 2:
        best = max(acc, key=lambda k: statistics.mean(acc[k][:2]))
        held = acc[best][2:]
        out["best_on_seeds_0_1"] = {"arch": best, "mean_other_seeds": statistics.mean(held),
                                    "vs": {k: vs(held, v[2:]) for k, v in uni.items()}}
    return out


def load_scratch(out: Path) -> dict:
    """Every scratch results file under ``out`` (``scratch*.json``), their runs joined."""
    scr: dict = {}
    for p in sorted(out.glob("scratch*.json")):
        r = load(p)
        runs = {**scr.get("runs", {}), **r.get("runs", {})}
        scr.update(r)
        scr["runs"] = runs
    return scr


def report(a) -> None:
    scr = load_scratch(Path(a.out))
    rows = [figures(scr, load(p)) for p in sorted((Path(a.out) / "variants").glob("*/scores.json"))]
    print(json.dumps(rows, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("scratch", "variant", "report"))
    ap.add_argument("--lut", required=True, help="cpu table of the space (equal-latency archs)")
    ap.add_argument("--out", default="runs/pruningnet-quality")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--resolution", type=int, default=14)
    ap.add_argument("--train-per-class", type=int, default=400, help="0: the whole training set")
    ap.add_argument("--val-per-class", type=int, default=100)
    ap.add_argument("--test-per-class", type=int, default=1000, help="1000: the whole Fashion-MNIST test set")
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--equal-seeds", type=int, default=2, help="scratch: seeds of the equal and uniform sets")
    ap.add_argument("--budget-x", type=float, default=2.0, help="equal-latency target: x the smallest arch's")
    ap.add_argument("--epochs", type=int, default=10, help="PruningNet and scratch epochs (equal)")
    ap.add_argument("--pn-epochs", type=int, help="variant: PruningNet epochs (default --epochs; more: a longer schedule)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keys", default="*", help="scratch: comma-separated patterns of the runs to train "
                    "(e.g. 'equal-*-s1' in a second process)")
    ap.add_argument("--results", default="scratch.json", help="scratch: results file under --out")
    ap.add_argument("--name", help="variant: its folder under OUT/variants")
    ap.add_argument("--rule", help="variant: train's --rule")
    ap.add_argument("--random-archs", type=int)
    ap.add_argument("--distill", type=int, choices=(0, 1))
    ap.add_argument("--bn", choices=("choice", "shared"))
    ap.add_argument("--draws", choices=DRAWS, help="variant: train's --draws")
    a = ap.parse_args()
    {"scratch": scratch, "variant": variant, "report": report}[a.command](a)


if __name__ == "__main__":
    main()
