"""Benchmark: how fast the predictor is (the search predicts thousands of archs).

    flock /tmp/prune-lut-cpu.lock python benchmarks/validate_predict_speed.py --lut LUT [--archs 2000]

Prints microseconds per arch for ``Predictor.predict`` on precomputed layer specs (cold cache:
first sight of each spec; warm: again) and for ``space.layer_specs`` (the caller's share).
"""
from __future__ import annotations

import argparse
import random
import time

from prune_lut.latency.lutfile import LUT
from prune_lut.latency.predictor import Predictor
from prune_lut.tables.validate import table_space


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True)
    ap.add_argument("--archs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    lut = LUT.load(a.lut)
    space = table_space(lut, a.lut)
    rng = random.Random(a.seed)
    archs = [space.random(rng) for _ in range(a.archs)]
    t = time.perf_counter()
    specs = [space.layer_specs(x) for x in archs]
    t_specs = time.perf_counter() - t
    pred = Predictor(lut)
    out = {}
    for phase in ("cold", "warm"):
        t = time.perf_counter()
        for s in specs:
            pred.predict(s)
        out[phase] = (time.perf_counter() - t) / len(specs) * 1e6
    print(f"{space.family} at {space.resolution}, {len(specs[0])} layers, {a.archs} random archs: predict "
          f"{out['cold']:.0f} us/arch cold, {out['warm']:.0f} us/arch warm; layer_specs {t_specs / len(specs) * 1e6:.0f} us/arch")


if __name__ == "__main__":
    main()
