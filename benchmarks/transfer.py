"""A shipped table on another device: how many end-to-end runs make it as good as a fresh build?

One transfer = a table built elsewhere (``--lut``) used on the ``--device`` profile here. Phases (each
stored under ``--out`` and skipped when already there, so an interrupted run continues):
  A. draw ``--pool`` + ``--heldout`` archs spread over the table's latency range (the sampler
     ``calibrate`` uses) and measure them all end to end on the device, in one interleaved run with
     the reference net (``latency.validate``); a share is measured twice (the noise floor);
  B. build a table of the same space from scratch on the device (``prune-lut build``), timed;
  C. measure the held-out archs again, after the build (the device drifts: both tables are judged
     on both measurements).
Then, for each N in ``--ns``, the calibration ``calibrate`` would fit on N of the pool's runs (spread
over the range) is fitted and judged on the held-out archs: within +-10% / +-5%, median error,
Spearman; beside the fresh table as built and the fresh table calibrated on the same 30 runs.

    flock /tmp/prune-lut-cpu.lock python benchmarks/transfer.py --lut prune_lut/lut_data/cpu-amd-epyc-mobilenet_v2-224.json.gz --device cpu --out runs/transfer-cpu
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from prune_lut.devices import get_device
from prune_lut.files import read_json, write_json
from prune_lut.latency.calibration import Calibration, select_and_fit
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.measure import get_meter
from prune_lut.latency.predictor import Predictor
from prune_lut.latency.report import error_figures
from prune_lut.latency.validate import validate_networks
from prune_lut.latency.worker import cpu_model, host_info
from prune_lut.tables.build import build_space_table
from prune_lut.tables.networks import onnx_bytes
from prune_lut.tables.sampling import SampledArch, stratified_archs
from prune_lut.tables.validate import table_space, validation_nets


def spread_subset(values: list[float], n: int) -> list[int]:
    """Indices of ``n`` of ``values`` evenly spaced over their sorted order (the range's both ends kept)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    return sorted({order[round(j * (len(order) - 1) / max(n - 1, 1))] for j in range(n)})


def measure(lut: LUT, device, archs: list, space, seed: int, repeat_share: float) -> dict:
    nets = validation_nets(space, archs)
    meter = get_meter(device)
    t0 = time.perf_counter()
    rec = validate_networks(lut, nets, onnx_bytes(space, space.full()), meter, repeat_share=repeat_share, seed=seed,
                            progress=True)
    rec["wall_s"] = time.perf_counter() - t0
    return rec


def judge(predict, samples: list[dict]) -> dict:
    return error_figures([predict(s) for s in samples], [s["measured_ms"] for s in samples])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lut", required=True, help="the shipped table (built on another machine)")
    ap.add_argument("--device", default="cpu", help="profile name or .toml here")
    ap.add_argument("--out", required=True)
    ap.add_argument("--pool", type=int, default=50)
    ap.add_argument("--heldout", type=int, default=40)
    ap.add_argument("--ns", default="5,10,20,30,50")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-build", action="store_true", help="skip the fresh build (phases B and C)")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    shipped = LUT.load(a.lut)
    space = table_space(shipped, a.lut)
    device = get_device(a.device)
    res = read_json(out / "report.json") if (out / "report.json").exists() else {}
    res.update({"command": "python benchmarks/transfer.py " + " ".join(f"--{k.replace('_', '-')} {v}"
                                                                       for k, v in vars(a).items()),
                "host": {**{k: host_info().get(k) for k in ("host", "cpu", "cores", "onnxruntime", "torch")}},
                "machine": platform.machine(), "shipped": {"lut": a.lut, "cpu": shipped.provenance.get("cpu"),
                                                             "date": shipped.provenance.get("date")},
                "device": device.name, "space": space.describe()})
    # A. the pool and the held-out archs, measured in one run
    if not (out / "phase_a.json").exists():
        sampled = stratified_archs(space, a.pool + a.heldout, Predictor(shipped).table_sum, seed=a.seed,
                                   multiple=int(shipped.device.get("multiple") or 1))
        write_json(out / "phase_a.json", measure(shipped, device, sampled, space, a.seed, 0.2))
    rec_a = read_json(out / "phase_a.json")
    S = rec_a["samples"]
    held = spread_subset([s["table_sum_ms"] for s in S], a.heldout)
    pool = [i for i in range(len(S)) if i not in held]
    res["phase_a"] = {"wall_s": rec_a["wall_s"], "archs": len(S), "s_per_arch": rec_a["wall_s"] / len(S),
                      "noise": rec_a["report"]["noise"], "reference_ms": rec_a["report"]["reference"],
                      "shipped_as_is_on_heldout": judge(lambda s: s["lut_predicted_ms"], [S[i] for i in held])}
    curves = {}
    for n in [int(x) for x in a.ns.split(",")]:
        pick = [pool[j] for j in spread_subset([S[i]["table_sum_ms"] for i in pool], n)]
        cal, _ = select_and_fit([S[i]["features"] for i in pick], [S[i]["measured_ms"] for i in pick], seed=a.seed)
        curves[n] = {"model": cal.model, "runs_s": res["phase_a"]["s_per_arch"] * len(pick), "cal": cal.to_dict(),
                     "heldout_a": judge(lambda s: cal.predict(s["features"]), [S[i] for i in held])}
    res["adapted"] = {str(n): {k: v for k, v in c.items() if k != "cal"} for n, c in curves.items()}
    write_json(out / "report.json", res)
    if a.no_build:
        print(json.dumps(res, indent=1))
        return
    # B. a fresh table built here
    fresh_path = out / "fresh.json.gz"
    if not fresh_path.exists() or not LUT.load(fresh_path).extra.get("build", {}).get("complete"):
        t0 = time.perf_counter()
        build_space_table(space, device, fresh_path, resume=fresh_path.exists(), seed=a.seed)
        res["fresh_build_wall_s"] = time.perf_counter() - t0
    fresh = LUT.load(fresh_path)
    res["fresh_build_s"] = fresh.extra["build"]["elapsed_s"]
    # C. the held-out archs again, after the build
    if not (out / "phase_c.json").exists():
        archs = [SampledArch(dict(zip(space.genes, S[i]["vector"])), S[i]["kind"], S[i]["rounded"],
                             S[i]["table_sum_ms"]) for i in held]
        write_json(out / "phase_c.json", measure(shipped, device, archs, space, a.seed + 1, 0.2))
    rec_c = read_json(out / "phase_c.json")
    C = rec_c["samples"]
    fp = Predictor(fresh)
    for s in [S[i] for i in held] + C:  # the fresh table's own sums for the same archs
        specs = space.layer_specs(dict(zip(space.genes, s["vector"])))
        s["fresh_ms"], s["fresh_features"] = fp.predict_ms(specs), fp.features(specs)
    pick30 = [pool[j] for j in spread_subset([S[i]["table_sum_ms"] for i in pool], 30)]
    for i in pick30:
        S[i]["fresh_features"] = fp.features(space.layer_specs(dict(zip(space.genes, S[i]["vector"]))))
    fresh_cal, _ = select_and_fit([S[i]["fresh_features"] for i in pick30], [S[i]["measured_ms"] for i in pick30],
                                  seed=a.seed)
    res["phase_c"] = {"wall_s": rec_c["wall_s"], "noise": rec_c["report"]["noise"],
                      "reference_ms": rec_c["report"]["reference"],
                      "heldout_a_vs_c_median_change_pct": float(np.median(
                          [100 * (c["measured_ms"] / S[i]["measured_ms"] - 1) for i, c in zip(held, C)]))}
    for n, c in curves.items():
        cal = Calibration.from_dict(c["cal"])
        res["adapted"][str(n)]["heldout_c"] = judge(lambda s: cal.predict(s["features"]), C)
    res["fresh"] = {"as_built": {"heldout_a": judge(lambda s: s["fresh_ms"], [S[i] for i in held]),
                                 "heldout_c": judge(lambda s: s["fresh_ms"], C)},
                    "calibrated_30": {"model": fresh_cal.model,
                                      "heldout_a": judge(lambda s: fresh_cal.predict(s["fresh_features"]),
                                                         [S[i] for i in held]),
                                      "heldout_c": judge(lambda s: fresh_cal.predict(s["fresh_features"]), C)}}
    res["cpu"] = cpu_model()
    write_json(out / "report.json", res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
