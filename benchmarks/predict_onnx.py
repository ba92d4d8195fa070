"""Tables that serve any CNN: torchvision networks predicted from the shipped table, and predict's speed.

1. The shipped ``cpu`` MobileNetV2-224 table is copied and calibrated on this machine (``calibrate``,
   ``--samples`` runs), unless ``--lut`` names a table calibrated here already.
2. torchvision ``mobilenet_v2(width_mult=w)`` for each ``--widths`` (no weights: latency does not depend
   on them) is exported with ``torch.onnx.export`` at 224, predicted from the table
   (``latency.model_predict.predict_onnx``: every operator mapped to a key) and measured end to end
   here, interleaved, ``--rounds`` times.
3. Speed: ``prune-lut predict`` on a torchvision ResNet-101 (104 convs; its table: the full-width
   member of the resnet101 space, profiled once) and on the MobileNetV2, in-process and as a fresh
   CLI process (Python start-up and imports included).

    flock /tmp/prune-lut-cpu.lock python benchmarks/predict_onnx.py --out runs/predict-onnx
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torchvision

from prune_lut.devices import get_device
from prune_lut.files import write_json
from prune_lut.latency.frame import frame_of
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.measure import measure_many
from prune_lut.latency.model_predict import predict_onnx
from prune_lut.latency.predictor import Predictor
from prune_lut.latency.worker import cpu_model
from prune_lut.lut_data import DATA_DIR
from prune_lut.pruning.space import get_space
from prune_lut.tables.build import build_space_table
from prune_lut.tables.networks import onnx_bytes
from prune_lut.tables.validate import calibrate_table, table_space

SHIPPED = DATA_DIR / "cpu-amd-epyc-mobilenet_v2-224.json.gz"


def export(net: torch.nn.Module, path: Path, res: int = 224) -> Path:
    if not path.exists():
        torch.onnx.export(net.eval(), torch.randn(1, 3, res, res), str(path), dynamo=False, opset_version=17)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/predict-onnx")
    ap.add_argument("--lut", help="a 224 cpu table already calibrated on this machine (default: calibrate a copy)")
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--widths", default="0.75,1.0")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rep: dict = {"command": " ".join(sys.argv), "cpu": cpu_model(), "torch": torch.__version__}
    lut_path = Path(a.lut) if a.lut else out / "cpu224-calibrated.json.gz"
    if not a.lut and not lut_path.exists():
        shutil.copyfile(SHIPPED, out / "copy.json.gz")
        t0 = time.perf_counter()
        rec = calibrate_table(out / "copy.json.gz", samples=a.samples, out=lut_path, record_path=out / "calibrate.json")
        rep["calibrate"] = {"seconds": time.perf_counter() - t0, "model": rec["calibration"]["model"],
                            "heldout": rec["report"]["headline"], "reference_now_ms": rec["frame"]["reference_ms"]}
    pred = Predictor(LUT.load(lut_path))
    models = {}
    for w in (float(x) for x in a.widths.split(",")):
        path = export(torchvision.models.mobilenet_v2(width_mult=w), out / f"tv-mobilenet_v2-{w:g}.onnx")
        p = predict_onnx(pred, path)
        models[f"{w:g}"] = {"onnx": str(path), "predicted_ms": p.ms, "low": p.low, "high": p.high,
                            "measured_share": p.measured_share, "counts": p.counts(), "unsupported": len(p.unsupported)}
    paths = [m["onnx"] for m in models.values()]
    # the table's own reference net (the space's full member, prune-lut's export) in the same run: it tells
    # the device's drift since the calibration from a difference between the two exports of one network
    space = table_space(LUT.load(lut_path))
    ref = onnx_bytes(space, space.full(), batch=1)
    rounds = [[r.median_ms for r in measure_many("cpu", paths + [ref])] for _ in range(a.rounds)]
    for i, m in enumerate(models.values()):
        m["measured_ms"] = statistics.median(r[i] for r in rounds)
        m["error_pct"] = 100 * (m["predicted_ms"] / m["measured_ms"] - 1)
    rep["torchvision_mobilenet_v2"] = models
    ref_ms = statistics.median(r[-1] for r in rounds)
    rep["reference"] = {"measured_ms": ref_ms, "frame_ms": frame_of(pred.lut).get("reference_ms"),
                        "predicted_ms": pred.predict_ms(space.layer_specs(space.full()))}
    # speed: a 100-layer model, in-process and as a new process. No ResNet table ships; the table of
    # resnet101's full-width member alone (grid 1.0: one network to profile) holds every key it needs.
    r101 = export(torchvision.models.resnet101(), out / "tv-resnet101.onnx")
    r101_lut = out / "cpu-resnet101-full.json.gz"
    if not r101_lut.exists():
        build_space_table(get_space("resnet101", grid=(1.0,), multiple=8), get_device("cpu"), r101_lut, heldout=0)
    speed = {}
    for name, path, table in (("mobilenet_v2", paths[-1], lut_path), ("resnet101", r101, r101_lut)):
        t0 = time.perf_counter()
        p = predict_onnx(Predictor(LUT.load(table)), path)
        speed[name] = {"in_process_s": time.perf_counter() - t0, "layers": len(p.layers), "convs": p.conv_nodes}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "prune_lut.cli", "predict", "--lut", str(table), str(path)],
                       check=True, capture_output=True)
        speed[name]["cli_process_s"] = time.perf_counter() - t0
    rep["speed"] = speed
    write_json(out / "report.json", rep)
    print(json.dumps(rep, indent=1))


if __name__ == "__main__":
    main()
