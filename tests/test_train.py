"""Training: exact resume, checkpoint contents, arch sampling, bad input (one line, exit 2, checkpoint kept)."""
import hashlib
import json

import pytest
import torch
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.errors import UserError
from prune_lut.pruning.arch import save_arch
from prune_lut.pruning.data import load_data
from prune_lut.pruning.space import get_space
from prune_lut.pruning.scoring import evaluate
from prune_lut.pruning.train import ArchSampler, load_checkpoint, train_pruningnet

# CLI runs: 40 digits images, 2 steps per epoch, a 2-unit MLP per PruningBlock (small checkpoints)
TINY = ["--data", "digits", "--train-per-class", "4", "--batch-size", "20", "--hidden", "2", "--multiple", "8",
        "--no-progress"]


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny():
    data = load_data("digits", train_per_class=4)  # 40 images: 2 steps of 20
    space = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8,
                      grid=(0.1, 0.25, 0.5))
    return space, data


@pytest.fixture(scope="module")
def cli_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "pn.pt"
    r = run("train", "--family", "mobilenet_v2", *TINY, "--epochs", 1, "--out", out)
    assert r.exit_code == 0, r.output
    return out


def test_resume_continues_exactly(tiny, tmp_path):
    space, data = tiny
    opts = dict(epochs=2, batch_size=20, lr=0.05, seed=3, hidden=2, progress=False, score_archs="none")
    full = train_pruningnet(space, data, out=tmp_path / "a.pt", **opts)
    first = train_pruningnet(space, data, out=tmp_path / "b.pt", stop_after=1, **opts)
    assert first.header["epoch"] == 1 and load_checkpoint(tmp_path / "b.pt").epoch == 1
    second = train_pruningnet(space, data, out=tmp_path / "b.pt", resume=True, **opts)
    a, b = load_checkpoint(tmp_path / "a.pt"), load_checkpoint(tmp_path / "b.pt")
    assert b.epoch == 2 and [h["archs_digest"] for h in a.header["history"]] == [h["archs_digest"] for h in second.history]
    assert [h["loss"] for h in a.header["history"]] == [h["loss"] for h in b.header["history"]]
    for k, v in a.state["model"].items():
        assert torch.equal(v, b.state["model"][k]), k
    assert a.header["history"][0]["archs_digest"] != a.header["history"][1]["archs_digest"]  # new archs each epoch


def test_checkpoint_holds_split_space_and_history(tiny, tmp_path):
    space, data = tiny
    train_pruningnet(space, data, out=tmp_path / "c.pt", epochs=1, batch_size=20, hidden=2, progress=False)
    ck = load_checkpoint(tmp_path / "c.pt")
    assert ck.space.hash == space.hash and ck.data_spec == "digits" and ck.epoch == 1
    assert ck.split["val"] == data.split["val"] and ck.split["train"] == data.split["train"]
    assert torch.equal(ck.load_data().val.x, data.val.x)
    assert 0 <= ck.header["history"][0]["val_full"] <= 1
    assert json.loads(open(tmp_path / "c.pt.log").readline())["epoch"] == 1
    torch.load(tmp_path / "c.pt", weights_only=True)  # tensors and plain containers only
    with pytest.raises(UserError, match="already exists"):
        train_pruningnet(space, data, out=tmp_path / "c.pt", epochs=1, batch_size=20, hidden=2, progress=False)
    with pytest.raises(UserError, match="hidden 2, not 3"):
        train_pruningnet(space, data, out=tmp_path / "c.pt", epochs=2, batch_size=20, hidden=3, resume=True,
                         progress=False)
    sampler = ck.header["sampler"]
    assert (sampler["rule"], sampler["random_archs"], sampler["draws"], sampler["distill"]) == ("widest", 3, "level",
                                                                                                 False)  # the defaults
    with pytest.raises(UserError, match="with rule widest, not alternate; drop that option"):
        train_pruningnet(space, data, out=tmp_path / "c.pt", epochs=2, batch_size=20, resume=True, rule="alternate",
                         progress=False)
    with pytest.raises(UserError, match="with distill False, not True"):
        train_pruningnet(space, data, out=tmp_path / "c.pt", epochs=2, batch_size=20, resume=True, distill=True,
                         progress=False)
    with pytest.raises(UserError, match="with draws level, not uniform"):
        train_pruningnet(space, data, out=tmp_path / "c.pt", epochs=2, batch_size=20, resume=True, draws="uniform",
                         progress=False)


def test_arch_sampler_is_a_function_of_seed_and_step_and_honours_macs_range():
    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    lo, hi = sp.macs(sp.uniform(0.4)), sp.macs(sp.uniform(0.6))
    s = ArchSampler(sp, seed=5, macs_range=(lo, hi))
    archs = [s.random(i) for i in range(10)]
    assert all(lo <= sp.macs(a) <= hi for a in archs)
    assert archs == [ArchSampler(sp, seed=5, macs_range=(lo, hi)).random(i) for i in range(10)]
    assert len({sp.vector(a) for a in archs}) == 10
    with pytest.raises(UserError, match="misses the space"):
        ArchSampler(sp, seed=0, macs_range=(1, 2))


def test_rules_choose_each_steps_archs_inside_the_range():
    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    alt = ArchSampler(sp, seed=5, rule="alternate")
    assert alt.step_archs(0) == alt.step_archs(8) == [sp.full()]
    odd = [alt.step_archs(i) for i in range(1, 12, 2)]
    assert odd == [[ArchSampler(sp, seed=5, rule="random").step_archs(i)[0]] for i in range(1, 12, 2)]
    assert [sp.full()] not in odd
    sw = ArchSampler(sp, seed=5, rule="sandwich", random_archs=3)
    step = sw.step_archs(7)
    assert step[:2] == [sp.full(), sp.smallest()] and len(step) == 5 and len({sp.vector(a) for a in step}) == 5
    assert step == ArchSampler(sp, seed=5, rule="sandwich", random_archs=3).step_archs(7)  # a function of (seed, step)
    wide = ArchSampler(sp, seed=5, rule="widest", random_archs=3).step_archs(7)
    assert wide == [sp.full()] + step[2:]  # the sandwich's step less its smallest arch
    assert ArchSampler(sp, seed=5, rule="widest", random_archs=3).describe()["random_archs"] == 3
    with pytest.raises(UserError, match=r"1\.\.16 \(widest\), got 0"):
        ArchSampler(sp, seed=5, rule="widest", random_archs=0)
    assert ArchSampler.rule_of({"rule": "sandwich", "random_archs": 0}) == ("sandwich", 0)  # read back as trained
    hi = sp.macs(sp.uniform(0.6))
    lo = sp.macs(sp.uniform(0.3))
    capped = ArchSampler(sp, seed=5, macs_range=(lo, hi), rule="sandwich")
    widest, smallest, *rand = capped.step_archs(0)
    assert sp.macs(widest) <= hi < sp.macs(sp.uniform(0.7))  # the widest uniform arch under the cap
    assert lo <= sp.macs(smallest) and sp.macs(sp.uniform(0.2)) < lo  # the narrowest uniform arch above the floor
    assert all(lo <= sp.macs(a) <= hi for a in rand)
    assert capped.describe()["rule"] == "sandwich" and capped.describe()["random_archs"] == 2
    with pytest.raises(UserError, match="unknown training rule"):
        ArchSampler(sp, seed=5, rule="zigzag")


def test_cli_and_checkpoint_schema_offer_every_rule_and_draw():
    """The CLI and the checkpoint schema list them without importing torch: they must not drift."""
    from typing import get_args

    from prune_lut.cli.train import train as command
    from prune_lut.pruning.train import DRAWS, RULES
    from prune_lut.schemas import Sampler

    choices = {p.name: p.type.choices for p in command.params if p.name in ("rule", "draws")}
    assert tuple(choices["rule"]) == RULES and set(choices["draws"]) == set(DRAWS)
    schema = {k: get_args(get_args(Sampler.model_fields[k].annotation)[0]) for k in ("rule", "draws")}
    assert schema == {"rule": RULES, "draws": DRAWS}


def test_level_draws_train_every_size_as_the_search_draws_them():
    """Uniform genes concentrate an arch's size mid-space (the narrow end is all but never drawn);
    level draws cover it evenly, narrow draws favour its small end and still reach its wide half; a
    function of (seed, step), recorded in the checkpoint's sampler."""
    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    lo, hi = sp.macs(sp.smallest()), sp.macs(sp.full())
    share = {d: [(sp.macs(ArchSampler(sp, seed=5, draws=d).random(i)) - lo) / (hi - lo) for i in range(200)]
             for d in ("uniform", "level", "narrow")}
    narrow = {d: sum(x < 0.15 for x in v) for d, v in share.items()}
    assert narrow["level"] >= 30 and narrow["uniform"] <= narrow["level"] / 5, narrow  # measured 52 vs 3
    wide = {d: sum(x > 0.5 for x in v) for d, v in share.items()}
    assert narrow["narrow"] >= 1.5 * narrow["level"] and 10 <= wide["narrow"] < wide["level"], (narrow, wide)
    lv = ArchSampler(sp, seed=5, draws="level")
    assert [lv.random(i) for i in range(5)] == [ArchSampler(sp, seed=5, draws="level").random(i) for i in range(5)]
    assert lv.describe()["draws"] == "level"
    with pytest.raises(UserError, match="unknown arch draws"):
        ArchSampler(sp, seed=5, draws="gauss")


def test_distillation_needs_the_sandwich_rule(tiny, tmp_path):
    space, data = tiny
    with pytest.raises(UserError, match="needs the sandwich or widest rule"):
        train_pruningnet(space, data, out=tmp_path / "d.pt", epochs=1, batch_size=20, hidden=2, rule="alternate",
                         distill=True, progress=False)
    r = train_pruningnet(space, data, out=tmp_path / "d.pt", epochs=1, batch_size=20, hidden=2, rule="alternate",
                         progress=False)
    assert r.header["sampler"]["distill"] is False  # the default turns off without a teacher


def test_evaluate_counts_top1(tiny):
    space, data = tiny
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    expected = float((net(data.test.x).argmax(1) == data.test.y).float().mean())
    assert evaluate(net, data.test, batch_size=7) == pytest.approx(expected)


def test_cli_train_then_refuses_another_space(cli_ckpt):
    before = digest(cli_ckpt)
    r = run("train", "--family", "mobilenet_v1", *TINY, "--epochs", 2, "--out", cli_ckpt, "--resume")
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "trained for mobilenet_v2" in r.output and "not for mobilenet_v1" in r.output
    r = run("train", "--family", "mobilenet_v2", *TINY, "--epochs", 2, "--out", cli_ckpt)
    assert r.exit_code == 2 and "--resume" in r.output
    assert digest(cli_ckpt) == before


def test_cli_nan_loss_keeps_last_good_checkpoint(cli_ckpt, tmp_path):
    import shutil

    ck = tmp_path / "nan.pt"
    shutil.copy(cli_ckpt, ck)
    before = digest(ck)
    r = run("train", "--family", "mobilenet_v2", *TINY, "--epochs", 4, "--lr", 1e30, "--out", ck, "--resume")
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "loss became" in r.output and "lower --lr" in r.output and "untouched" in r.output
    assert digest(ck) == before and load_checkpoint(ck).epoch == 1


def test_cli_resolution_too_small(tmp_path):
    r = run("train", "--family", "mobilenet_v2", *TINY, "--standard-input", "--out", tmp_path / "x.pt")
    assert r.exit_code == 2 and "too small" in r.output and r.output.count("\n") == 1
    r = run("train", "--family", "resnet18", *TINY, "--resolution", 4, "--out", tmp_path / "x.pt")
    assert r.exit_code == 2 and "resolution 4 is too small" in r.output
    assert not (tmp_path / "x.pt").exists()


def test_cli_retrain_from_scratch_and_from_pruningnet(cli_ckpt, tmp_path):
    ck = load_checkpoint(cli_ckpt)
    arch_file = tmp_path / "arch.json"
    save_arch(arch_file, ck.space, ck.space.uniform(0.25))
    r = run("retrain", arch_file, "--data", "digits", "--epochs", 1, "--batch-size", 128, "--out", tmp_path / "r.pt",
            "--no-progress", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert 0.1 < out["test_acc"] <= 1 and out["data"]["test"] == 359
    r = run("retrain", arch_file, "--data", "digits", "--epochs", 1, "--batch-size", 128, "--out", tmp_path / "i.pt",
            "--init", f"pruningnet:{cli_ckpt}", "--no-progress")
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.output
    assert load_checkpoint(tmp_path / "i.pt").header["init"] == str(cli_ckpt)
    r = run("retrain", arch_file, "--data", "digits", "--epochs", 2, "--out", tmp_path / "r.pt", "--resume",
            "--no-progress", "--batch-size", 64)
    assert r.exit_code == 2 and "batch-size 128, not 64" in r.output
    # resuming a from-scratch run "from the PruningNet" would silently continue the scratch weights
    before = digest(tmp_path / "r.pt")
    r = run("retrain", arch_file, "--data", "digits", "--epochs", 2, "--out", tmp_path / "r.pt", "--resume",
            "--init", f"pruningnet:{cli_ckpt}", "--no-progress")
    assert r.exit_code == 2 and "started from scratch, not from" in r.output and r.output.count("\n") == 1, r.output
    assert digest(tmp_path / "r.pt") == before


def test_arch_sampler_latency_range_from_a_lut_file(tmp_path):
    """The LUT here is a real LUT file whose entries are set from each layer's MACs (1 ms per 10 M MACs),
    not measured: the test is about sampling inside a predicted-latency range, not about timing."""
    from prune_lut.latency.lutfile import LUT
    from prune_lut.latency.predictor import Predictor

    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8,
                   grid=(0.1, 0.4, 0.7))
    lut = LUT(device={"name": "test"}, provenance={"note": "entries from MACs, not measured"},
              space={**sp.describe(), "hash": sp.hash})
    for a in [sp.full(), sp.smallest()] + [sp.random(__import__("random").Random(i)) for i in range(400)]:
        for spec in sp.layer_specs(a):
            lut.add(spec.key, spec.macs / 1e7 + 0.001, 0.0, 1)
    path = tmp_path / "t.lut.json.gz"
    lut.save(path)
    pred = Predictor(LUT.load(path))
    lo, hi = (pred.predict_ms(sp.layer_specs(sp.uniform(r))) for r in (0.4, 0.7))
    s = ArchSampler(sp, seed=1, latency_range=(lo, hi), lut=str(path))
    for i in range(5):
        assert lo <= pred.predict_ms(sp.layer_specs(s.random(i))) <= hi
    with pytest.raises(UserError, match="needs --lut"):
        ArchSampler(sp, seed=1, latency_range=(lo, hi))


@pytest.mark.parametrize("command", ["train", "retrain"])
def test_cli_resume_in_a_fresh_process(tmp_path, command):
    """`--resume` through the installed entry point in a new interpreter: nothing is registered before
    the checkpoint names its family (the suite's own imports hid a resume that never worked)."""
    import subprocess
    import sys

    if command == "train":
        args = ["train", "--family", "mobilenet_v2", *TINY]
    else:
        space = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
        save_arch(tmp_path / "a.json", space, space.uniform(0.25))
        args = ["retrain", str(tmp_path / "a.json"), "--data", "digits", "--batch-size", "20", "--no-progress"]
    out = tmp_path / "pn.pt"
    for epochs, more in ((1, []), (2, ["--resume"])):
        r = subprocess.run([sys.executable, "-m", "prune_lut.cli", *args, "--epochs", str(epochs), "--out", str(out),
                            *more], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
    assert load_checkpoint(out).epoch == 2


def test_shared_batchnorm_is_recorded_and_resumed(tiny, tmp_path):
    space, data = tiny
    out = tmp_path / "s.pt"
    train_pruningnet(space, data, out=out, epochs=2, stop_after=1, batch_size=20, hidden=2, bn="shared", progress=False)
    ck = load_checkpoint(out)
    assert ck.header["config"]["bn"] == "shared" and ck.pruningnet.bn == "shared"
    r = train_pruningnet(space, data, out=out, epochs=2, batch_size=20, resume=True, progress=False)
    assert r.header["epoch"] == 2 and load_checkpoint(out).pruningnet.bn == "shared"
    with pytest.raises(UserError, match="bn shared, not choice"):
        train_pruningnet(space, data, out=out, epochs=3, batch_size=20, resume=True, bn="choice", progress=False)
