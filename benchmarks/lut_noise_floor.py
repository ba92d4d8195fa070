"""How repeatable is one in-context layer time on this machine? The floor under the LUT entry target.

The entry target of issue 3 compares two *builds*. A build's entry is the per-node time of a layer
profiled inside whole networks (``latency/build.py``). This script removes everything a build adds
(planning, attribution across different networks, the regressor): it profiles the *same* few
networks with the build's meter and protocol, in rounds ``--gap`` seconds apart, and compares each
node's time between rounds. The first round is the baseline: for each later round it reports the
share of nodes within 5% of their baseline time. If that share is far below 95%, no build method
meets the entry target on this machine.

It reports each comparison two ways:
  * raw;
  * after dividing by the reference network's end-to-end ratio (the drift correction a table's
    ``reference`` allows).
It also splits nodes by kind (depthwise, pointwise, per spatial size, classifier) to show which
layers the machine's drift moves.

    python benchmarks/lut_noise_floor.py --rounds 6 --gap 60 --out /tmp/noise-floor.json
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import re
import sys
import time

import numpy as np

from prune_lut.latency.attribution import attribute
from prune_lut.latency.measure import get_meter
from prune_lut.tables.networks import space_network
from prune_lut.pruning.space import get_space


def kind(key: str) -> str:
    """``conv-s7-c96x128-k1-st1-g1-none`` -> ``conv-s7-pw`` (depthwise: ``dw``)."""
    m = re.match(r"(\w+)-s(\d+)-c(\d+)x(\d+)-k(\d)-st(\d)-g(\d+)", key)
    if not m:
        return key.split("-")[0]
    op, s, _, _, k, _, g = m.groups()
    return f"{op}-s{s}-{'dw' if g != '1' else ('pw' if k == '1' else f'k{k}')}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--networks", type=int, default=8, help="random archs of the space (plus the full net)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--gap", type=float, default=60.0, help="seconds from the start of one round to the next")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="noise-floor.json")
    a = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    space = get_space("mobilenet_v2", resolution=a.resolution)
    rng = random.Random(a.seed)
    nets = [space_network(space, space.full())] + [space_network(space, space.random(rng)) for _ in range(a.networks)]
    models = [n.onnx() for n in nets]
    meter = get_meter(a.device)
    rounds = []  # per round: reference e2e, and per network {position: (key, ms)}
    t0 = time.monotonic()
    for r in range(a.rounds):
        while time.monotonic() < t0 + r * a.gap:
            time.sleep(0.5)
        # the reference is timed (not profiled) first, as in a build's group
        res = meter.measure_many(models[:1] + models, nodes=[False] + [True] * len(models), protocol=None)
        per_net = [attribute(m, x["nodes"], x.get("node_spreads"))[0] for m, x in zip(models, res[1:])]
        rounds.append({"t": round(time.monotonic() - t0, 1), "ref_ms": res[0]["median_ms"],
                       "nodes": [{p: (k, ms) for p, (k, ms, _) in pp.items()} for pp in per_net]})
        print(f"round {r}: t={rounds[-1]['t']:.0f} s, reference {res[0]['median_ms']:.3f} ms", flush=True)

    base = rounds[0]
    report = {"command": "python " + " ".join(sys.argv), "host": platform.node(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "settings": vars(a), "info": meter.info(), "rounds": []}
    for rd in rounds[1:]:
        drift = rd["ref_ms"] / base["ref_ms"]
        rows = []  # (kind, baseline ms, ratio)
        for nb, nr in zip(base["nodes"], rd["nodes"]):
            for p, (k, ms) in nb.items():
                if ms > 0 and nr[p][1] > 0:
                    rows.append((kind(k), ms, nr[p][1] / ms))
        ratio = np.array([x[2] for x in rows])
        kinds = sorted({x[0] for x in rows})
        by_kind = {}
        for kd in kinds:
            m = np.array([x[0] == kd for x in rows])
            by_kind[kd] = {"n": int(m.sum()), "median_ratio": float(np.median(ratio[m])),
                           "within_5pct": float(np.mean(np.abs(ratio[m] - 1) <= 0.05)),
                           "within_5pct_drift_corrected": float(np.mean(np.abs(ratio[m] / drift - 1) <= 0.05))}
        report["rounds"].append({
            "t": rd["t"], "ref_ratio": drift, "nodes": len(rows),
            "within_5pct": float(np.mean(np.abs(ratio - 1) <= 0.05)),
            "within_5pct_drift_corrected": float(np.mean(np.abs(ratio / drift - 1) <= 0.05)),
            "within_5pct_median_corrected": float(np.mean(np.abs(ratio / np.median(ratio) - 1) <= 0.05)),
            "median_ratio": float(np.median(ratio)), "p10_p90_ratio": np.percentile(ratio, [10, 90]).tolist(),
            "by_kind": by_kind})
        r = report["rounds"][-1]
        print(f"t={rd['t']:5.0f} s  reference x{drift:.3f}  nodes within 5%: {r['within_5pct']:.1%} raw, "
              f"{r['within_5pct_drift_corrected']:.1%} reference-corrected, "
              f"{r['within_5pct_median_corrected']:.1%} median-corrected  (p10/p90 ratio "
              f"{r['p10_p90_ratio'][0]:.3f}/{r['p10_p90_ratio'][1]:.3f})")
    report["raw_rounds"] = [{"t": rd["t"], "ref_ms": rd["ref_ms"]} for rd in rounds]
    with open(a.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k not in ("rounds", "info")}, indent=1))


if __name__ == "__main__":
    main()
