"""`prune-lut validate`: real ONNX Runtime measurements of a tiny space against a really built table."""
from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.devices import get_device
from prune_lut.latency.calibration import Calibration
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.predictor import Predictor
from prune_lut.latency.validate import anchor_ms, compute_report, reference_ms
from prune_lut.tables.build import build_space_table
from prune_lut.pruning.space import get_space
from prune_lut.tables.validate import load_record, validate_table

# The quickstart space on a 3-ratio grid: ~220 keys, built in seconds.
SPACE = dict(small_input=True, resolution=8, in_channels=1, num_classes=10, multiple=8, grid=(0.25, 0.5, 1.0))


def tiny_space():
    return get_space("mobilenet_v2", **SPACE)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real table for the tiny space on the `cpu` device, and a --fit validation of it."""
    d = tmp_path_factory.mktemp("val")
    lut_path = d / "tiny.json.gz"
    build_space_table(tiny_space(), get_device("cpu"), lut_path, heldout=4, progress=False)
    raw = d / "raw.json.gz"
    shutil.copy(lut_path, raw)  # the table before --fit stored a calibration in lut_path
    rec = validate_table(lut_path, samples=16, seed=3, fit=True, record_path=d / "rec.json", progress=False)
    return {"dir": d, "lut": lut_path, "raw": raw, "record": rec, "record_path": d / "rec.json"}


def test_report_recomputed_from_stored_samples(built):
    rec = load_record(built["record_path"])  # from the file alone
    assert rec["report"] == json.loads(json.dumps(built["record"]["report"]))  # floats survive JSON exactly
    S = rec["samples"]
    assert len(S) == 16 and len({tuple(s["vector"]) for s in S}) == 16
    # independent recomputation of the table-sum figures, straight from the samples
    e = np.array([100 * (s["table_sum_ms"] - s["measured_ms"]) / s["measured_ms"] for s in S])
    ts = rec["report"]["table_sum"]
    assert ts["median_abs_pct"] == pytest.approx(np.median(np.abs(e)))
    assert ts["rmspe"] == pytest.approx(np.sqrt(np.mean(e ** 2)))
    assert ts["within_10"] == pytest.approx(np.mean(np.abs(e) <= 10))
    # measured = raw * reference at build / median reference of the run (drift "global")
    ref_now = np.median(rec["reference"]["now_ms"])
    for s in S:
        assert s["measured_ms"] == pytest.approx(s["raw_ms"] * rec["reference"]["lut_ms"] / ref_now)
    # the held-out headline uses only held-out samples, predicted by the stored calibration
    cal = Calibration.from_dict(rec["calibration"])
    hold = rec["split"]["heldout"]
    assert set(hold).isdisjoint(rec["split"]["fit"]) and len(hold) == 8
    he = [abs(cal.predict(S[i]["features"]) / S[i]["measured_ms"] - 1) * 100 for i in hold]
    assert rec["report"]["headline"]["mean_abs_pct"] == pytest.approx(np.mean(he))
    # a tampered sample changes the recomputed figures (the report is not copied from the file)
    rec["samples"][hold[0]]["measured_ms"] *= 2
    assert compute_report(rec)["headline"]["mean_abs_pct"] != pytest.approx(np.mean(he))
    # repeats give the noise floor
    assert rec["report"]["noise"]["pairs"] == len(rec["repeats"]) >= 3


def test_calibration_round_trips_through_the_lut_file(built):
    lut = LUT.load(built["lut"])
    assert lut.calibration == built["record"]["calibration"]
    assert lut.calibration["meta"]["heldout"]["n"] == 8
    # predictions are anchored to the build's reference time unless fitted on unscaled times (--drift none)
    meta = lut.calibration["meta"]
    assert meta["drift"] == "global" and anchor_ms(lut) == reference_ms(lut) != meta["reference_now_ms"]
    assert meta["reference_now_ms"] == pytest.approx(np.median(built["record"]["reference"]["now_ms"]))
    meta["drift"] = "none"
    assert anchor_ms(lut) == meta["reference_now_ms"]
    lut = LUT.load(built["lut"])
    pred = Predictor(lut)
    assert pred.calibrated and pred.calibration_source == "validate"
    sp = tiny_space()
    raw = Predictor(LUT.load(built["raw"]))
    assert raw.calibration_source in ("build", None)
    for arch in (sp.full(), sp.smallest(), sp.uniform(0.5)):
        specs = sp.layer_specs(arch)
        p = pred.predict(specs)
        assert p.calibrated and p.low <= p.ms <= p.high
        assert p.ms == pytest.approx(Calibration.from_dict(built["record"]["calibration"]).predict(pred.features(specs)))
        assert p.table_sum_ms == pytest.approx(sum(lut.entries[s.key]["median_ms"] for s in specs))
        assert pred.predict_ms(specs) == pytest.approx(p.ms)
        assert raw.table_sum(specs) == pytest.approx(p.table_sum_ms)


def test_provenance_difference_warns(built, tmp_path):
    lut = LUT.load(built["raw"])
    lut.provenance = {**lut.provenance, "cpu": "Some Other CPU @ 1.0GHz", "onnxruntime": "0.0.1"}
    lut.reference = {**lut.reference, "first_ms": lut.reference["first_ms"] * 3, "last_ms": lut.reference["last_ms"] * 3}
    for n in lut.extra["networks"]:
        n["ref_ms"] *= 3
    path = tmp_path / "moved.json.gz"
    lut.save(path)
    r = CliRunner().invoke(main, ["validate", "--lut", str(path), "--samples", "3", "--json"])
    assert r.exit_code == 0, r.output
    err = r.stderr
    assert "warning: CPU differs: table measured with Some Other CPU @ 1.0GHz" in err
    assert "warning: ONNX Runtime differs: table measured with 0.0.1" in err
    assert "warning: the reference network runs in" in err and "% off the table's" in err
    # the unmodified table raises no provenance warning
    rec = built["record"]
    assert not [w for w in rec["warnings"] if "differs" in w]


def test_max_error_exit_code(built):
    run = CliRunner().invoke
    ok = run(main, ["validate", "--from-record", str(built["record_path"]), "--max-error", "1000"])
    assert ok.exit_code == 0, ok.output
    assert "held-out (n=8)" in ok.output and "noise floor" in ok.output
    bad = run(main, ["validate", "--from-record", str(built["record_path"]), "--max-error", "0.001"])
    assert bad.exit_code == 1
    assert "exceeds --max-error 0.001%" in bad.stderr


def test_plot_is_a_png(built, tmp_path):
    out = tmp_path / "v.png"
    r = CliRunner().invoke(main, ["validate", "--from-record", str(built["record_path"]), "--plot", str(out)])
    assert r.exit_code == 0, r.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 600


def test_validate_json_and_refusals(built, tmp_path):
    run = CliRunner().invoke
    r = run(main, ["validate", "--from-record", str(built["record_path"]), "--json"])
    assert r.exit_code == 0
    out = json.loads(r.stdout)
    assert out["report"]["fit"]["model"] == built["record"]["calibration"]["model"]
    assert set(out["report"]["fit"]["heldout_candidates"]) == {"none", "scale", "linear", "sum_macs", "per_op", "regressor"}
    r = run(main, ["validate"])
    assert r.exit_code == 2 and "give --lut FILE" in r.stderr
    r = run(main, ["validate", "--lut", str(built["raw"]), "--samples", "8", "--fit"])
    assert r.exit_code == 2 and "--samples must be at least 12 to fit" in r.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{\"schema\": \"something-else\"}")
    r = run(main, ["validate", "--from-record", str(bad)])
    assert r.exit_code == 2 and "not a validation record" in r.stderr
    damaged = tmp_path / "damaged.json.gz"
    damaged.write_bytes(gzip.compress(b"{not json"))
    r = run(main, ["validate", "--lut", str(damaged)])
    assert r.exit_code == 2 and "damaged" in r.stderr


def test_validate_works_on_the_torch_cpu_backend(tmp_path):
    """Same protocol, another backend: a torch-cpu table validates through the same code."""
    lut_path = tmp_path / "torch.json.gz"
    sp = get_space("mobilenet_v2", **{**SPACE, "grid": (0.5, 1.0)})
    build_space_table(sp, get_device("torch-cpu"), lut_path, heldout=2, progress=False)
    rec = validate_table(lut_path, samples=6, seed=1, progress=False)
    assert rec["device"]["backend"] == "torch" and rec["report"]["n"] == 6
    assert all(s["measured_ms"] > 0 and s["reps"] >= 20 for s in rec["samples"])
    assert rec["report"]["table_sum"]["spearman"] is not None
    assert LUT.load(lut_path).calibration is None  # no --fit: the table is left as it was
