"""Does the search pick archs the table under-predicts? Measured vs predicted latency, selected vs not.

The search keeps the most accurate archs whose *predicted* latency fits the budget. Where a table's
entries err, an arch made of under-predicted entries fits more capacity under the budget, scores
higher, and is kept: the winner's curse, on latency. This measures it side by side:
  * ``top``: the search's best ``--top`` archs (one search of the checkpoint under ``--latency-ms``);
  * ``control``: as many archs drawn without selection, predicted within +-5% of the median of the
    top's predictions (the level draws of the equal-latency benchmark);
  * ``uniform``: the uniform archs predicted within +-15% of that latency;
all measured end to end on this machine's cpu profile in ``--rounds`` interleaved rounds (median per
arch). Reported per group: measured / predicted, median and spread, and Mann-Whitney's U of top vs
control. The machine's drift since the table was built scales every group alike; only the groups'
difference tells the selection's bias.

``--check-lut`` (repeatable) names independent builds of the same space: the same archs' measured /
predicted under each of them. Their entries' errors owe nothing to this search's selection, so where
the top's excess vanishes under them it was the searched table's noise that the search picked; where it
stays, the table's error follows the archs' structure and every build shares it.

    python benchmarks/latency_selection.py --checkpoint CK --lut LUT --latency-ms 0.32 --out runs/sel
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from scipy.stats import mannwhitneyu

sys.path.insert(0, str(Path(__file__).parent))
from pruningnet_quality import equal_latency_archs  # noqa: E402
from reference_time import reference_ms  # noqa: E402
from search_strong import measure_all  # noqa: E402

from prune_lut.files import read_json, write_json  # noqa: E402
from prune_lut.latency.lutfile import LUT  # noqa: E402
from prune_lut.latency.predictor import Predictor  # noqa: E402
from prune_lut.pruning.evolution import EvolutionConfig  # noqa: E402
from prune_lut.pruning.search import load_result, search_checkpoint  # noqa: E402
from prune_lut.pruning.train import load_checkpoint  # noqa: E402


def groups(space, predict, result: dict, top: int, n_control: int, seed: int) -> dict[str, dict[str, dict]]:
    tops = {f"top{e['rank']}": space.check_arch(e["arch"]["genes"]) for e in result["top"][:top]}
    target = statistics.median(predict(x) for x in tops.values())
    control = {f"control{i}": x for i, x in enumerate(equal_latency_archs(space, predict, target, n_control, seed))}
    uniform = {f"x{r:g}": space.uniform(r) for r in sorted(set(space.grid))
               if abs(predict(space.uniform(r)) / target - 1) <= 0.15}
    return {"top": tops, "control": control, "uniform": uniform}


def summary(ratios: list[float]) -> dict:
    return {"n": len(ratios), "median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a PruningNet checkpoint of the table's space")
    ap.add_argument("--lut", required=True, help="the cpu table the search predicts with")
    ap.add_argument("--latency-ms", type=float, required=True, help="the search's budget")
    ap.add_argument("--out", required=True, help="folder: the search result and report.json")
    ap.add_argument("--check-lut", action="append", default=[], help="an independent build of the same space")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--control", type=int, help="unselected archs (default: --top)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--population", type=int, default=50)
    ap.add_argument("--generations", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    space = load_checkpoint(a.checkpoint).space
    predictors = {p: Predictor(LUT.load(p, space_hash=space.hash)) for p in [a.lut, *a.check_lut]}
    predict = lambda arch, lut=a.lut: predictors[lut].predict_ms(space.layer_specs(arch))  # noqa: E731
    res_path = out / "result.json"
    if not res_path.exists():
        search_checkpoint(a.checkpoint, [a.lut], [a.latency_ms], EvolutionConfig(
            population=a.population, generations=a.generations, parents=min(10, a.population), seed=a.seed),
            res_path, resume=True, top_k=a.top)
    sets = groups(space, predict, load_result(res_path), a.top, a.control or a.top, a.seed + 2)
    rep_path = out / "report.json"
    rep = read_json(rep_path) if rep_path.exists() else {}
    archs = {k: x for g in sets.values() for k, x in g.items()}
    stored = {k: x["genes"] for g in rep.get("archs", {}).values() for k, x in g.items()}
    # the measurement is the expensive part: kept once taken, for as long as the names mean the same archs
    if any(k not in rep.get("measured", {}) or stored.get(k) != x for k, x in archs.items()):
        rep["reference_ms_before"] = reference_ms()["median_ms"]
        rep["measured"] = measure_all(space, archs, a.rounds)
        rep["reference_ms_after"] = reference_ms()["median_ms"]
    rep.update({"lut": a.lut, "check_luts": a.check_lut, "checkpoint": a.checkpoint, "latency_ms": a.latency_ms,
                "rounds": a.rounds,
                "archs": {g: {k: {"genes": x, "predicted_ms": {p: predict(x, p) for p in predictors},
                                  "macs": space.macs(x)} for k, x in xs.items()} for g, xs in sets.items()}})
    rep["by_lut"] = {p: compare(rep, p) for p in predictors}
    write_json(rep_path, rep)
    for p, c in rep["by_lut"].items():
        print(f"measured / predicted by {p}:")
        for g, s in c["measured_over_predicted"].items():
            print(f"  {g:8s} n {s['n']:2d}  median {s['median']:.3f} ({s['min']:.3f}-{s['max']:.3f})")
        print(f"  top vs control: Mann-Whitney U {c['u']:.0f}, one-sided p {c['p_top_greater']:.3g}")
    print(f"reference {rep['reference_ms_before']:.2f} ms before, {rep['reference_ms_after']:.2f} ms after")


def compare(rep: dict, lut: str) -> dict:
    """Measured / predicted by ``lut`` per group, and Mann-Whitney's U of top over control."""
    ratio = {g: [rep["measured"][k] / x["predicted_ms"][lut] for k, x in xs.items()] for g, xs in rep["archs"].items()}
    u = mannwhitneyu(ratio["top"], ratio["control"], alternative="greater")
    return {"measured_over_predicted": {g: summary(r) for g, r in ratio.items() if r},
            "u": float(u.statistic), "p_top_greater": float(u.pvalue)}


if __name__ == "__main__":
    main()
