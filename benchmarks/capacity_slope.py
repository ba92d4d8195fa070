"""How much accuracy a doubling of MACs buys: uniform archs trained from scratch at several data sizes.

The search can only win what capacity at equal latency is worth. This measures that worth directly:
each ``--ratios`` uniform arch of the small-input MobileNetV2 space trained from scratch (train_plain,
batch 128, lr 0.05, cosine) at ``--seeds`` seeds, for each ``--sizes`` entry ``PER_CLASS:EPOCHS``
(``0`` per class: the whole training set; choose epochs so that every size sees about as many
images). Reports test accuracy mean and spread per (size, ratio) and, between consecutive ratios, the
points gained per doubling of MACs with its standard error from the seed spread. Resumes: every run
checkpoints, report.json is rewritten after each.

    python benchmarks/capacity_slope.py --out runs/slope --resolution 28 --ratios 0.22,0.44 --sizes 1000:10,0:2
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import time
from pathlib import Path

from prune_lut.files import read_json, write_json
from prune_lut.pruning.data import load_data
from prune_lut.pruning.train import train_plain
from reference_time import reference_ms  # benchmarks/ (this script's folder)
from small_space import small_space


def slopes(cells: dict, ratios: list[str]) -> list[dict]:
    """Points per doubling of MACs between consecutive ratios, with the standard error of the means."""
    out = []
    for a, b in zip(ratios, ratios[1:]):
        ca, cb = cells.get(a), cells.get(b)
        if not ca or not cb or ca["n"] < 2 or cb["n"] < 2:
            continue
        doublings = math.log2(cb["macs"] / ca["macs"])
        se = math.sqrt(ca["stdev"] ** 2 / ca["n"] + cb["stdev"] ** 2 / cb["n"])
        out.append({"from": a, "to": b, "doublings": doublings,
                    "points_per_doubling": 100 * (cb["mean"] - ca["mean"]) / doublings,
                    "se": 100 * se / doublings})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/slope")
    ap.add_argument("--data", default="fashion-mnist", help="fashion-mnist[:DIR]")
    ap.add_argument("--resolution", type=int, default=28)
    ap.add_argument("--ratios", default="0.22,0.44", help="uniform width ratios, narrowest first")
    ap.add_argument("--sizes", default="1000:10,0:2", help="PER_CLASS:EPOCHS,... (0 per class: the whole set)")
    ap.add_argument("--val-per-class", type=int, default=100, help="held out of the split; train_plain trains on it too")
    ap.add_argument("--seeds", type=int, default=3)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rep_path = out / "report.json"
    report = read_json(rep_path) if rep_path.exists() else {"settings": vars(a), "runs": {}, "reference_ms": []}
    # Runs are keyed by seed, so a rerun with more seeds adds runs; any other change would mix settings.
    if {**report["settings"], "seeds": a.seeds} != vars(a):
        raise SystemExit(f"{rep_path} was made with other settings ({report['settings']}); choose another --out")
    report["settings"]["seeds"] = a.seeds
    report["reference_ms"].append(reference_ms()["median_ms"])
    ratios = a.ratios.split(",")
    for size in a.sizes.split(","):
        per_class, epochs = (int(x) for x in size.split(":"))
        data = load_data(a.data, resolution=a.resolution, val_per_class=a.val_per_class, seed=0,
                         train_per_class=per_class or None)
        space = small_space(data)
        cells = report.setdefault("cells", {}).setdefault(size, {})
        for r in ratios:
            arch = space.uniform(float(r))
            for seed in range(a.seeds):
                key = f"{size}-x{r}-s{seed}"
                if key in report["runs"]:
                    continue
                t0 = time.perf_counter()
                res = train_plain(space, arch, data, epochs=epochs, seed=seed, out=out / f"{key.replace(':', 'e')}.pt",
                                  resume=True, progress=False)
                report["runs"][key] = {"test_acc": res.test_acc, "seconds": time.perf_counter() - t0}
                write_json(rep_path, report)
                print(key, report["runs"][key], flush=True)
            acc = [report["runs"][f"{size}-x{r}-s{s}"]["test_acc"] for s in range(a.seeds)]
            cells[r] = {"macs": space.macs(arch), "mean": statistics.mean(acc), "n": len(acc), "values": acc,
                        "stdev": statistics.stdev(acc) if len(acc) > 1 else 0.0}
        report.setdefault("slopes", {})[size] = slopes(cells, ratios)
        print(size, report["slopes"][size], flush=True)
    report["reference_ms"].append(reference_ms()["median_ms"])
    report["date"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    write_json(rep_path, report)


if __name__ == "__main__":
    main()
