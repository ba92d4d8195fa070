"""Training step time: PruningNet step vs the plain full-width network's step, same batch size (CPU).

A step = forward, backward and SGD update (momentum, weight decay), on real images. The PruningNet
is timed at the full-width arch (same convolutions as the plain net: the ratio is the generator's
overhead), at random archs, and with the sandwich rule training uses (the widest, the smallest and
two random archs in one step, their kernels generated together: timed per arch trained). Median of
--steps steps after warm-up.

    flock /tmp/prune-lut-cpu.lock python benchmarks/train_step_time.py
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch
import torch.nn.functional as F

from prune_lut.pruning.data import load_data
from prune_lut.pruning.net import build_net
from prune_lut.pruning.pruningnet import PruningNet
from prune_lut.pruning.train import ArchSampler, make_sgd, plain_param_groups, space_for_data


class Stepper:
    """One model's training step (forward, backward, SGD with momentum and weight decay)."""

    def __init__(self, model, forward, groups, x, y):
        self.model, self.forward, self.x, self.y = model.train(), forward, x, y
        self.opt = make_sgd(groups, 0.01, 0.9)  # the optimizer training uses
        self.i = 0

    def __call__(self) -> float:
        t = time.perf_counter()
        out = self.forward(self.i)
        outs = out if isinstance(out, list) else [out]
        loss = sum(F.cross_entropy(z, self.y, label_smoothing=0.1) for z in outs)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.i += 1
        return time.perf_counter() - t


def interleaved(steppers: dict, steps: int, warmup: int = 2) -> dict[str, list[float]]:
    """Steps taken round-robin, so load from other processes hits every model alike."""
    times = {k: [] for k in steppers}
    for i in range(warmup + steps):
        for k, s in steppers.items():
            t = s()
            if i >= warmup:
                times[k].append(t)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits")
    ap.add_argument("--resolution", type=int)
    ap.add_argument("--family", default="mobilenet_v2")
    ap.add_argument("--multiple", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    data = load_data(a.data, resolution=a.resolution, train_per_class=max(1, a.batch_size // 10 + 1))
    sp = space_for_data(a.family, data, multiple=a.multiple)
    x, y = data.train.x[: a.batch_size], data.train.y[: a.batch_size]
    torch.manual_seed(0)
    full = sp.full()
    plain = build_net(sp, full)
    pn = PruningNet(sp, hidden=a.hidden)
    archs = [sp.random(random.Random(i)) for i in range(a.steps + 2)]
    sandwich = ArchSampler(sp, 0, rule="sandwich", random_archs=2)
    per_step = len(sandwich.step_archs(0))
    t = interleaved({"plain": Stepper(plain, lambda i: plain(x), plain_param_groups(plain, 5e-4), x, y),
                     "full": Stepper(pn, lambda i: pn(x, full), pn.param_groups(5e-4), x, y),
                     "rand": Stepper(pn, lambda i: pn(x, archs[i]), pn.param_groups(5e-4), x, y),
                     "sandwich": Stepper(pn, lambda i: pn(x, sandwich.step_archs(i)), pn.param_groups(5e-4), x, y)},
                    a.steps)
    t_plain, t_full, t_rand = t["plain"], t["full"], t["rand"]
    t_sw = [v / per_step for v in t["sandwich"]]
    m = statistics.median
    res = {"family": a.family, "data": a.data, "resolution": sp.resolution, "batch_size": len(y), "hidden": a.hidden,
           "pruningnet_params_M": round(sum(p.numel() for p in pn.parameters()) / 1e6, 2),
           "plain_params_M": round(sum(p.numel() for p in plain.parameters()) / 1e6, 3),
           "plain_full_step_s": round(m(t_plain), 4), "pruningnet_full_step_s": round(m(t_full), 4),
           "pruningnet_random_step_s": round(m(t_rand), 4),
           "ratio_full": round(m(t_full) / m(t_plain), 3), "ratio_random": round(m(t_rand) / m(t_plain), 3),
           "pruningnet_sandwich_step_per_arch_s": round(m(t_sw), 4), "archs_per_sandwich_step": per_step,
           "ratio_sandwich_per_arch": round(m(t_sw) / m(t_plain), 3),
           "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(res))


if __name__ == "__main__":
    main()
