"""prune-lut build on small spaces: coverage, real ORT profiling, SIGKILL + resume, shards + merge, refusals."""
import gzip
import json
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.devices import Device
from prune_lut.errors import UserError
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.lutops import merge
from prune_lut.tables.build import build_space_table
from prune_lut.tables.coverage import all_specs, covering_archs
from prune_lut.pruning.space import get_space

FAST = {"warmup": 2, "chunk": 3, "min_reps": 6, "max_reps": 12, "rel_tol": 0.05, "max_seconds": 5.0}
DEV = Device(name="cpu-fast", backend="onnxruntime", provider="CPUExecutionProvider", threads=1, multiple=8,
             protocol=FAST, source="test")
QUICK = dict(small_input=True, resolution=8, in_channels=1, num_classes=10, multiple=8)


def tiny(grid=(0.5, 1.0)):
    return get_space("mobilenet_v2", grid=grid, **QUICK)


def test_all_specs_cover_every_arch(family, rng):
    sp = get_space(family, small_input=True, resolution=32, multiple=8, grid=(0.25, 0.5, 1.0))
    keys = set(all_specs(sp))
    for _ in range(30):
        assert {s.key for s in sp.layer_specs(sp.random(rng))} <= keys
    archs = covering_archs(sp, seed=1)
    assert {s.key for a in archs for s in sp.layer_specs(a)} >= keys
    assert all(sp.check_arch(a) == a for a in archs)
    # greedy: no more networks than keys of the busiest position allow, times a small slack
    assert len(archs) <= 2 * max(len(g.choices) for g in sp.genes.values()) ** 2


def test_build_measures_every_key(tmp_path):
    sp = tiny()
    out = tmp_path / "t.json.gz"
    lut = build_space_table(sp, DEV, out, heldout=2, progress=False)
    keys = set(all_specs(sp))
    assert set(lut.entries) == keys and lut.measured_keys() == keys
    back = LUT.load(out, space_hash=sp.hash)
    assert back.entries == lut.entries and back.device == DEV.to_dict()
    assert back.provenance["threads"] == 1 and back.provenance["onnxruntime"] and back.provenance["cpu"]
    assert back.reference["median_ms"] > 0 and len(back.reference["keys"]) == len(sp.layer_specs(sp.full()))
    nets = back.extra["networks"]
    assert sum(n["heldout"] for n in nets) == 2 and all(n["e2e_ms"] > 0 for n in nets)
    convs = [e for k, e in back.entries.items() if k.startswith("conv")]
    assert all(e["median_ms"] > 0 and e["reps"] >= FAST["min_reps"] for e in convs)
    s2e = back.extra["sum_to_e2e"]
    assert s2e["n"] >= 3 and s2e["heldout"]["n"] == 2
    assert back.extra["build"]["complete"] and back.regressor["used"] is False
    # the CLI summary reads it
    r = CliRunner().invoke(main, ["lut", "info", str(out), "--json"])
    assert r.exit_code == 0, r.output
    i = json.loads(r.output)
    assert i["coverage"]["measured"] == len(keys) == i["coverage"]["space_keys"] and i["coverage"]["complete"]


def test_existing_output_needs_resume(tmp_path):
    out = tmp_path / "t.json.gz"
    out.write_bytes(b"x")
    with pytest.raises(UserError, match="pass --resume"):
        build_space_table(tiny(), DEV, out, progress=False)


def test_time_budget_fills_with_regressor(tmp_path):
    sp = get_space("mobilenet_v2", grid=(0.25, 0.5, 0.75, 1.0), **QUICK)
    # a budget shorter than planning still measures the run's first group (one network), then stops
    out = tmp_path / "b.json.gz"
    lut = build_space_table(sp, DEV, out, time_budget_min=1e-6, heldout=0, group=1, progress=False)
    keys = set(all_specs(sp))
    measured, predicted = lut.measured_keys(), {k for k, e in lut.entries.items() if e["source"] == "predicted"}
    assert measured and predicted and measured | predicted == keys and not measured & predicted
    assert lut.extra["build"]["networks_done"] == 1
    reg = lut.regressor
    assert reg["used"] and reg["n_predicted"] == len(predicted) and reg["n_heldout"] > 0
    assert reg["heldout_median_abs_rel_err"] is not None
    assert all(lut.entries[k]["median_ms"] > 0 for k in predicted)
    # resuming over budget measures one more group: progress, and the old entries are kept
    again = build_space_table(sp, DEV, out, time_budget_min=1e-6, resume=True, heldout=0, group=1, progress=False)
    assert again.extra["build"]["networks_done"] == 2 and measured < again.measured_keys()


KILL_SCRIPT = """
import sys
from prune_lut.devices import Device
from prune_lut.tables.build import build_space_table
from prune_lut.pruning.space import get_space
FAST = {fast!r}
dev = Device(name="cpu-fast", backend="onnxruntime", provider="CPUExecutionProvider", threads=1, multiple=8,
             protocol=FAST, source="test")
sp = get_space("mobilenet_v2", grid=(0.25, 0.5, 0.75, 1.0), **{quick!r})
build_space_table(sp, dev, sys.argv[1], resume=True, heldout=0, group=1, progress=False)
"""


def test_resume_after_sigkill_keeps_every_entry(tmp_path):
    out = tmp_path / "k.json.gz"
    script = tmp_path / "b.py"
    script.write_text(KILL_SCRIPT.format(fast=FAST, quick=QUICK))
    proc = subprocess.Popen([sys.executable, str(script), str(out)])
    deadline = time.time() + 120
    while time.time() < deadline:  # kill -9 once a few networks are stored
        if out.exists():
            try:
                if len(LUT.load(out).extra["networks"]) >= 3:
                    break
            except UserError:
                pass  # never happens with atomic writes; the assert below would catch a torn file
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = LUT.load(out)  # loads: the write was atomic
    n_before = len(before.extra["networks"])
    assert 3 <= n_before and not before.extra["build"].get("complete")
    sp = get_space("mobilenet_v2", grid=(0.25, 0.5, 0.75, 1.0), **QUICK)
    after = build_space_table(sp, DEV, out, resume=True, heldout=0, group=1, progress=False)
    assert set(after.entries) == set(all_specs(sp)) and after.extra["build"]["complete"]
    for k, e in before.entries.items():  # every stored entry kept; an observation only gives way
        a = after.entries[k]                # to one taken while the machine was quieter
        assert a["source"] == "measured" and len(a["obs"]) >= len(e["obs"])
        for o, r in zip(e["obs"], e["refs"]):
            assert o in a["obs"] or max(a["refs"]) <= r
    ids = [n["id"] for n in after.extra["networks"]]
    assert len(ids) == len(set(ids)), "a network was profiled twice"
    # the resumed run only profiled networks for keys that were still missing
    stored = before.measured_keys()
    for n in after.extra["networks"][n_before:]:
        if n["pass"] == "profiling":  # (re-profiling passes revisit keys measured on a busy machine)
            assert set(n["keys"]) - stored


def test_shards_merge_to_the_single_build_key_set(tmp_path):
    sp = tiny()
    a = build_space_table(sp, DEV, tmp_path / "s1.json.gz", shard="1/2", heldout=1, progress=False)
    b = build_space_table(sp, DEV, tmp_path / "s2.json.gz", shard="2/2", heldout=1, progress=False)
    r = CliRunner().invoke(main, ["lut", "merge", str(tmp_path / "s1.json.gz"), str(tmp_path / "s2.json.gz"),
                                  "--out", str(tmp_path / "m.json.gz")])
    assert r.exit_code == 0, r.output
    m = LUT.load(tmp_path / "m.json.gz", space_hash=sp.hash)
    assert set(m.entries) == set(all_specs(sp)) == m.measured_keys()
    assert set(a.entries) | set(b.entries) == set(m.entries)
    assert len(m.extra["networks"]) == len(a.extra["networks"]) + len(b.extra["networks"])
    assert [x["shard"] for x in m.provenance["merged_from"]] == ["1/2", "2/2"]
    # refusals: another space, another device profile
    other = build_space_table(get_space("mobilenet_v2", grid=(1.0,), **QUICK), DEV, tmp_path / "o.json.gz",
                              heldout=0, progress=False)
    with pytest.raises(UserError, match="another space"):
        merge([a, other])
    b.device = {**b.device, "threads": 2}
    with pytest.raises(UserError, match="another profile"):
        merge([a, b])


def _write_gz(path, obj):
    with gzip.open(path, "wt") as f:
        json.dump(obj, f)


@pytest.mark.parametrize("kind, msg", [
    ("damaged", "damaged or truncated gzip data"),
    ("truncated", "damaged or truncated gzip data"),
    ("schema", "schema 'prune-lut.lut/99' found; this prune-lut reads lookup tables of schema prune-lut.lut/1"),
    ("foreign", "not a lookup table: it names no schema"),
    ("badentry", "entries.k: key 'k' is not a layer key"),
    ("missing", "no such LUT file"),
])
def test_bad_files_refused_in_one_line(tmp_path, kind, msg):
    p = tmp_path / "x.json.gz"
    good = {"schema": "prune-lut.lut/1", "device": {}, "provenance": {}, "space": {"hash": "h"},
            "entries": {"conv-s8-c8x8-k1-st1-g1-none": {"median_ms": 1.0, "spread_ms": 0, "reps": 1,
                                                        "source": "measured"}}}
    if kind == "damaged":
        p.write_bytes(b"\x1f\x8b\x08\x00garbage")
    elif kind == "truncated":
        raw = gzip.compress(json.dumps(good).encode())
        p.write_bytes(raw[: len(raw) // 2])
    elif kind == "schema":
        _write_gz(p, {**good, "schema": "prune-lut.lut/99"})
    elif kind == "foreign":
        _write_gz(p, {"weights": [1, 2, 3]})
    elif kind == "badentry":
        _write_gz(p, {**good, "entries": {"k": {"median_ms": 1.0, "source": "guessed"}}})
    r = CliRunner().invoke(main, ["lut", "info", str(p)])
    assert r.exit_code == 2 and msg in r.output and r.output.strip().count("\n") == 0, r.output


def test_resume_refuses_other_space(tmp_path):
    out = tmp_path / "t.json.gz"
    build_space_table(tiny(), DEV, out, heldout=0, progress=False)
    with pytest.raises(UserError, match="another space"):
        build_space_table(get_space("mobilenet_v2", grid=(0.25, 1.0), **QUICK), DEV, out, resume=True,
                          progress=False)
    with pytest.raises(UserError, match="another profile"):
        build_space_table(tiny(), Device(**{**DEV.to_dict(), "threads": 2}), out, resume=True, progress=False)


def test_cli_build_bad_shard_one_line(tmp_path):
    r = CliRunner().invoke(main, ["build", "--device", "cpu", "--family", "mobilenet_v2", "--small-input",
                                  "--shard", "3/2", "--out", str(tmp_path / "x.json.gz")])
    assert r.exit_code == 2 and "--shard '3/2'" in r.output


def test_sum_to_e2e_is_never_a_falling_line():
    """A few networks of nearly equal table sums (a tiny space) gave a Theil-Sen slope of -1.07, which
    ranked the full net below the smallest one. Those four networks, as a real build of the 2-ratio
    quickstart space stored them, now get a ratio through the origin."""
    from prune_lut.latency.build import fit_sum_to_e2e

    lut = LUT(device={}, provenance={}, space={})
    nets = [(0.2273, 0.1342), (0.2060, 0.1181), (0.2186, 0.1199), (0.2302, 0.0909)]  # (table sum, e2e) ms
    for i, (s, e) in enumerate(nets):
        lut.add(f"k{i}", s, 0.0, 1)
        lut.extra.setdefault("networks", []).append({"id": str(i), "keys": [f"k{i}"], "e2e_ms": e, "ref_ms": 0.18})
    fit = fit_sum_to_e2e(lut)
    assert fit["a"] > 0 and fit["b"] == 0.0 and "median" in fit["method"]
    ratios = sorted(e / s for s, e in nets)
    assert fit["a"] == pytest.approx((ratios[1] + ratios[2]) / 2)  # the median of four
