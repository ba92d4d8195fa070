"""Predictor, calibration fitting and latency-stratified sampling; `prune-lut predict`."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.devices import get_device
from prune_lut.errors import UserError
from prune_lut.latency.calibration import CANDIDATES, SIMPLE, Calibration, features_from_groups, select_and_fit
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.predictor import Predictor
from prune_lut.pruning.arch import save_arch
from prune_lut.tables.build import build_space_table
from prune_lut.tables.sampling import is_rounded, stratified_archs
from prune_lut.pruning.space import get_space

SPACE = dict(small_input=True, resolution=8, in_channels=1, num_classes=10, multiple=8, grid=(0.5, 1.0))


def small_space():
    return get_space("mobilenet_v2", **SPACE)


@pytest.fixture(scope="module")
def lut_path(tmp_path_factory):
    """A real table (per-node profiles on ONNX Runtime) for a 2-ratio quickstart space."""
    p = tmp_path_factory.mktemp("pred") / "small.json.gz"
    build_space_table(small_space(), get_device("cpu"), p, heldout=3, progress=False)
    return p


def test_predictor_sums_the_table_and_applies_the_build_fit(lut_path):
    lut = LUT.load(lut_path)
    pred = Predictor(lut)
    sp = small_space()
    rng = random.Random(0)
    s2e = lut.extra["sum_to_e2e"]
    assert pred.calibration_source == "build"
    for _ in range(5):
        specs = sp.layer_specs(sp.random(rng))
        p = pred.predict(specs)
        total = sum(lut.entries[s.key]["median_ms"] for s in specs)
        assert p.table_sum_ms == pytest.approx(total)
        assert p.ms == pytest.approx(s2e["a"] * total + s2e["b"])
        assert p.low <= p.ms <= p.high and p.calibrated
        assert pred.predict_ms(specs) == pytest.approx(p.ms)
    lut.extra.pop("sum_to_e2e")
    bare = Predictor(lut).predict(specs)
    assert not bare.calibrated and bare.ms == pytest.approx(total) and bare.low <= total <= bare.high


def test_missing_key_names_the_key_and_the_fix(lut_path):
    lut = LUT.load(lut_path)
    sp = small_space()
    specs = sp.layer_specs(sp.full())
    gone = specs[3].key
    del lut.entries[gone]
    with pytest.raises(UserError) as e:
        Predictor(lut).predict(specs)
    msg = str(e.value)
    assert gone in msg and "prune-lut build" in msg and "\n" not in msg


def test_predict_cli(lut_path, tmp_path):
    sp = small_space()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    save_arch(a, sp, sp.full())
    save_arch(b, sp, sp.smallest())
    r = CliRunner().invoke(main, ["predict", "--lut", str(lut_path), str(a), str(b), "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["predictions"]
    assert [x["macs"] for x in rows] == [sp.macs(sp.full()), sp.macs(sp.smallest())]
    assert [x["params"] for x in rows] == [sp.params(sp.full()), sp.params(sp.smallest())]
    assert rows[0]["ms"] > rows[1]["ms"] > 0 and all(x["low"] <= x["ms"] <= x["high"] for x in rows)
    r = CliRunner().invoke(main, ["predict", "--lut", str(lut_path), str(a)])
    assert r.exit_code == 0 and "ms [" in r.output and "M MACs" in r.output
    other = get_space("mobilenet_v2", **{**SPACE, "grid": (0.25, 1.0)})
    c = tmp_path / "c.json"
    save_arch(c, other, other.full())
    r = CliRunner().invoke(main, ["predict", "--lut", str(lut_path), str(a), str(c)])
    assert r.exit_code == 2 and "another space" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _synthetic(n: int, seed: int, fn):
    rng = np.random.default_rng(seed)
    feats, y = [], []
    for _ in range(n):
        g = {"conv": rng.uniform(.05, .2), "pwconv": rng.uniform(.5, 2), "dwconv": rng.uniform(.2, 1),
             "add": rng.uniform(0, .1), "pool": .01, "linear": .02}
        feats.append(features_from_groups(g, int(rng.integers(10 ** 7, 3 * 10 ** 8))))
        y.append(fn(g))
    return feats, y


def test_calibration_selection_prefers_the_simplest_adequate_model():
    feats, y = _synthetic(30, 0, lambda g: sum(g.values()))
    cal, oof = select_and_fit(feats, y)
    assert cal.model == "none" and set(oof) == set(cal.meta["cv"]) == set(CANDIDATES)
    feats, y = _synthetic(30, 1, lambda g: 1.3 * sum(g.values()) + 0.2)
    cal, oof = select_and_fit(feats, y)
    assert cal.model == "linear"
    assert cal.coef["sum"] == pytest.approx(1.3, rel=1e-6) and cal.coef["1"] == pytest.approx(0.2, rel=1e-5)
    feats, y = _synthetic(40, 2, lambda g: 2.0 * g["dwconv"] + 0.7 * g["pwconv"] + g["conv"] + 0.1)
    cal, oof = select_and_fit(feats, y)
    cv = cal.meta["cv"]
    assert cal.model in ("per_op", "regressor")
    assert cv[cal.model]["mean_abs_pct"] < cv["linear"]["mean_abs_pct"] - 1
    assert cal.meta["n_fit"] == 40 and cal.meta["folds"] == 5
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.predict(feats[0]) == pytest.approx(cal.predict(feats[0]))


def test_few_samples_compare_only_the_simple_candidates():
    """With 6 runs a per-op model (7 coefficients) cannot be told from luck: only 'none', 'scale' and
    'linear' compete, and the out-of-fold predictions are each sample predicted without it."""
    feats, y = _synthetic(6, 3, lambda g: 2.0 * g["dwconv"] + 0.7 * g["pwconv"] + g["conv"] + 0.1)
    cal, oof = select_and_fit(feats, y)
    assert set(oof) == set(SIMPLE) and cal.model in SIMPLE and cal.meta["folds"] == 5
    assert not any(np.allclose(oof[m], y) for m in ("scale", "linear"))  # held out, not fitted on itself


def test_sampling_covers_the_latency_range_with_both_width_kinds():
    sp = get_space("mobilenet_v2", resolution=64)  # paper grid: widths off the multiple exist
    macs = lambda specs: sum(s.macs for s in specs) / 1e6  # noqa: E731  (a cheap stand-in for a table sum)
    out = stratified_archs(sp, 20, macs, seed=0, multiple=8)
    assert len({sp.vector(s.arch) for s in out}) == 20
    vals = sorted(s.predicted_ms for s in out)
    lo, hi = macs(sp.layer_specs(sp.smallest())), macs(sp.layer_specs(sp.full()))
    assert vals[0] < lo + 0.1 * (hi - lo) and vals[-1] > hi - 0.1 * (hi - lo)
    gaps = np.diff(vals)
    assert gaps.max() < 0.2 * (hi - lo)  # no hole in the range
    rounded = [s.rounded for s in out]
    assert 5 <= sum(rounded) <= 15
    assert all(is_rounded(s.arch, 8) == s.rounded for s in out)
