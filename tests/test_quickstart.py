"""`prune-lut quickstart` end to end with tiny settings (real table, real measurements, real digits).

The smoke test trains one epoch on 20 digits per class and searches 4 x 2 archs: it checks that
every stage runs and writes its files, and that a second call reuses them (and refuses to resume
another retraining start); the full-size run (the
README's command, <= 10 minutes on 2 cores) is marked slow and its figures are in docs/BENCHMARKS.md.
"""
from __future__ import annotations

import json
import shutil

import onnxruntime as ort
import pytest
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.lut_data import find_table
from prune_lut.pruning.train import load_checkpoint
from prune_lut.quickstart import RETRAIN_FROM, QuickstartOptions, quickstart_space


@pytest.fixture(scope="module")
def shipped():
    path = find_table(quickstart_space(), "cpu")
    if path is None:
        pytest.skip("no shipped cpu table for the quickstart space in prune_lut/lut_data")
    return path


TINY = ["--epochs", "1", "--train-per-class", "20", "--population", "4", "--generations", "2",
        "--calibrate-samples", "5", "--retrain-epochs", "1", "--verify", "2"]


def test_quickstart_smoke(shipped, tmp_path):
    out = tmp_path / "qs"
    r = CliRunner().invoke(main, ["quickstart", "--out", str(out), *TINY, "--processes", "2", "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads((out / "summary.json").read_text())
    assert json.loads(r.stdout) == s  # --json: stdout is the summary alone, progress goes to stderr
    assert s["processes"] == 2 and "gen   2/2" in r.output  # the search's processes report through the command
    for f in ("cpu.lut.json.gz", "calibration.json", "calibration.png", "pruningnet.pt", "result.json", "search.png",
              "winner.onnx", "uniform.onnx", "full.onnx"):
        assert (out / f).is_file(), f
    assert s["training"]["train_images"] == 200
    res = json.loads((out / "result.json").read_text())
    assert res["evaluations"] == 8 and res["budgets"]["latency"][0]["latency_ms"] == pytest.approx(s["budget_ms"])
    w = s["winner"]
    assert w["predicted_ms"] <= s["budget_ms"] < s["full"]["predicted_ms"]
    assert w["measured_ms"] > 0 and s["full"]["measured_ms"] > 0 and 0 <= w["test_accuracy"] <= 1
    # the three were retrained from scratch (the default) and scored on the test set
    assert s["retrain"] == {"from": "scratch", "epochs": 1}
    assert s["uniform_test"] == res["uniform_test"] and "search #1 vs uniform on the " in r.output
    for name in ("winner", "uniform", "full"):
        assert 0 <= s[name]["retrained_test_accuracy"] <= 1 and load_checkpoint(out / f"{name}.pt").header["init"] is None
    assert w["error_pct"] == pytest.approx(100 * (w["predicted_ms"] / w["measured_ms"] - 1))
    # the search's best archs were measured; the winner is the most accurate one that met the budget measured
    v = s["verified"]
    assert [e["search_rank"] for e in v] == list(range(1, len(v) + 1)) and 1 <= len(v) <= 2
    meets = [e["search_rank"] for e in v if e["measured_ms"] <= s["budget_ms"]]
    assert w["search_rank"] == (meets[0] if meets else 1)
    assert w["measured_ms"] == v[w["search_rank"] - 1]["measured_ms"]
    sess = ort.InferenceSession(str(out / "winner.onnx"))
    assert sess.run(None, {"input": __import__("numpy").zeros((2, 1, 8, 8), "float32")})[0].shape == (2, 10)
    # a second call reuses every stage (nothing is trained or searched again)
    r2 = CliRunner().invoke(main, ["quickstart", "--out", str(out), *TINY])
    assert r2.exit_code == 0, r2.output
    assert r2.output.count("reusing") == 4
    # asking for another start in the same folder is refused, not resumed from the other start's weights
    before = {n: (out / f"{n}.pt").read_bytes() for n in ("winner", "uniform", "full")}
    r3 = CliRunner().invoke(main, ["quickstart", "--out", str(out), *TINY, "--retrain-from", "pruningnet"])
    assert r3.exit_code == 2 and "was retrained from scratch, not as --retrain-from pruningnet asks" in r3.output
    assert before == {n: (out / f"{n}.pt").read_bytes() for n in ("winner", "uniform", "full")}
    # the other start, in a copy of the folder without the retrained checkpoints: fine-tuned from the PruningNet
    ft = tmp_path / "ft"
    shutil.copytree(out, ft, ignore=shutil.ignore_patterns("winner.pt", "uniform.pt", "full.pt"))
    r4 = CliRunner().invoke(main, ["quickstart", "--out", str(ft), *TINY, "--retrain-from", "pruningnet"])
    assert r4.exit_code == 0, r4.output
    assert json.loads((ft / "summary.json").read_text())["retrain"] == {"from": "pruningnet", "epochs": 1}
    for name in ("winner", "uniform", "full"):
        assert load_checkpoint(ft / f"{name}.pt").header["init"] == str(ft / "pruningnet.pt")


def test_cli_offers_every_retraining_start():
    from prune_lut.cli.quickstart import quickstart as command  # the CLI lists them without importing torch

    params = {p.name: p for p in command.params}
    assert tuple(params["retrain_from"].type.choices) == RETRAIN_FROM
    assert params["retrain_from"].default == QuickstartOptions.retrain_from
    assert params["retrain_epochs"].default == QuickstartOptions.retrain_epochs
    assert params["processes"].default is QuickstartOptions.processes is None  # one per core


def test_quickstart_bad_input(tmp_path):
    r = CliRunner().invoke(main, ["quickstart", "--out", str(tmp_path), "--budget-share", "1.5"])
    assert r.exit_code == 2 and "--budget-share" in r.output
    r = CliRunner().invoke(main, ["quickstart", "--out", str(tmp_path), "--verify", "0"])
    assert r.exit_code == 2 and "--verify must be an integer in 1..1000" in r.output and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_quickstart_full(shipped, tmp_path):
    """The README's command with its defaults (minutes): every stage; the winner under budget as predicted,
    the measured verdict stated with its reason (small nets move 25% on a shared VM: no timing asserted),
    and the retrained winner within 2 points of the retrained full net (issue 16's promise on digits)."""
    r = CliRunner().invoke(main, ["quickstart", "--out", str(tmp_path / "qs"), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "qs" / "summary.json").read_text())
    w = s["winner"]
    assert w["predicted_ms"] <= s["budget_ms"]
    meets = w["measured_ms"] <= s["budget_ms"]
    assert s["winner_under_budget_measured"] == meets
    assert f"the winner {'meets' if meets else 'misses'} the budget as measured ({w['measured_ms']:.4g}" in r.output
    assert s["full"]["retrained_test_accuracy"] - w["retrained_test_accuracy"] <= 0.02
