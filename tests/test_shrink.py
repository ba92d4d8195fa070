"""Entries shrunk toward the regressor (latency/shrink.py): closer to the truth than the raw medians
on a table whose noise is known, the noise estimated, refusals, and `prune-lut lut shrink`."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.errors import UserError
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.shrink import shrink
from prune_lut.pruning.space import get_space
from prune_lut.tables.coverage import all_specs

SIGMA = 0.2  # per observation, in log time: what the 14x14 cpu table showed


def truth_ms(spec) -> float:
    """A smooth latency a regressor can learn, with an op-dependent overhead."""
    return 2e-3 + 1e-6 * spec.macs ** 0.9 + (1e-3 if spec.groups > 1 else 0.0)


@pytest.fixture(scope="module")
def noisy_table():
    """The quickstart space's depthwise keys and an eighth of the others, their truth, and an entry: the median of 1-5 noisy observations."""
    rng = np.random.default_rng(0)
    space = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    lut = LUT(device={"name": "cpu"}, provenance={}, space={"hash": space.hash})
    truth = {}
    for i, (key, spec) in enumerate(all_specs(space).items()):
        if spec.op not in ("conv", "linear") or (spec.groups == 1 and i % 8):  # an eighth: a quick fit
            continue
        truth[key] = truth_ms(spec)
        obs = [float(truth[key] * math.exp(rng.normal(0, SIGMA))) for _ in range(rng.integers(1, 6))]
        lut.add(key, float(np.median(obs)), 0.0, 10 * len(obs), obs=obs, refs=[1.0] * len(obs))
    return lut, truth


def log_error(lut: LUT, truth: dict[str, float]) -> float:
    return float(np.sqrt(np.mean([math.log(lut.entries[k]["median_ms"] / t) ** 2 for k, t in truth.items()])))


def test_shrunk_entries_are_closer_to_the_truth(noisy_table):
    lut, truth = noisy_table
    shrunk = copy.deepcopy(lut)
    figures = shrink(shrunk)
    raw, after = log_error(lut, truth), log_error(shrunk, truth)
    assert raw > 0.1 and after < 0.6 * raw, (raw, after)
    for g in ("pwconv", "dwconv"):
        assert abs(figures[g]["sigma_log"] - SIGMA) < 0.03, figures[g]  # the noise, estimated from repeats
        assert figures[g]["mean_weight"] < 0.5  # a smooth truth: the regressor is trusted more than one median
    k = next(iter(truth))
    assert shrunk.entries[k]["raw_median_ms"] == lut.entries[k]["median_ms"]
    assert "shrinkage" in shrunk.extra


def test_entries_away_from_the_regressor_are_kept_where_they_are_sure():
    """A key truly far from the smooth trend, observed 5 times with little noise, keeps most of its distance."""
    rng = np.random.default_rng(1)
    space = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    lut = LUT(device={"name": "cpu"}, provenance={}, space={"hash": space.hash})
    specs = {k: s for i, (k, s) in enumerate(all_specs(space).items()) if s.op == "conv" and s.kernel == 1 and not i % 8}
    odd = set(list(specs)[::7])  # 1 in 7 keys runs 2x slower than the trend: structure, not noise
    for key, spec in specs.items():
        t = truth_ms(spec) * (2.0 if key in odd else 1.0)
        obs = [float(t * math.exp(rng.normal(0, 0.05))) for _ in range(5)]
        lut.add(key, float(np.median(obs)), 0.0, 50, obs=obs, refs=[1.0] * 5)
    shrink(lut)
    kept = [lut.entries[k]["shrink_weight"] for k in odd]
    assert min(kept) > 0.8


def test_refuses_a_calibrated_or_shrunk_table(noisy_table):
    lut = copy.deepcopy(noisy_table[0])
    shrink(lut)
    with pytest.raises(UserError, match="shrunk already"):
        shrink(lut)
    lut = copy.deepcopy(noisy_table[0])
    lut.calibration = {"model": "scale", "coef": {"sum": 1.0}}
    with pytest.raises(UserError, match="prune-lut calibrate"):
        shrink(lut)


def test_cli_writes_a_new_table_and_keeps_its_input(tmp_path, noisy_table):
    src, out = tmp_path / "t.json.gz", tmp_path / "s.json.gz"
    noisy_table[0].save(src)
    before = src.read_bytes()
    r = CliRunner().invoke(main, ["lut", "shrink", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "pwconv" in r.output and src.read_bytes() == before
    assert LUT.load(out).extra["shrinkage"]["groups"]["pwconv"]["keys"] > 0
    r = CliRunner().invoke(main, ["lut", "shrink", str(src), "--out", str(out)])
    assert r.exit_code != 0 and "--force" in r.output
