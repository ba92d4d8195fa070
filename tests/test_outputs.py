"""The output policy (prune_lut/outputs.py), through the real CLI: an existing output is replaced only
when asked (--force, or --resume where a command continues it), an output onto one of the command's
inputs is refused, an unwritable output is refused before any work, and nothing is left behind.
Every refusal is one line, exit 2, with every input unchanged (issue 13, items 2 and 3)."""
from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from conftest import TINY_TRAIN, cli, sha
from prune_lut.errors import UserError
from prune_lut.files import write_atomic
from prune_lut.outputs import Output, check_outputs, same_file

SEARCH = ["--latency-ms", 1.0, "--population", 4, "--generations", 1, "--parents", 2]
BUILD = ["build", "--device", "cpu", "--family", "mobilenet_v2", "--small-input", "--in-channels", 1,
         "--num-classes", 10, "--time-budget", 0.001]


def refused(r, *needles) -> str:
    """The one error line of a refused command (exit 2, nothing else on stderr, no traceback)."""
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(err) == 1 and err[0].startswith("error: "), r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def no_temporaries(folder) -> None:
    left = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert not left, left


@pytest.fixture
def work(tmp_path, search_result, pn_checkpoint):
    """Copies of a search's inputs and result in one folder, and their digests."""
    files = {"ckpt": tmp_path / "pn.pt", "lut": tmp_path / "cpu.json.gz", "result": tmp_path / "r.json"}
    os.link(pn_checkpoint, files["ckpt"])  # 64 MB: a hard link is the same file, as a copy would be
    shutil.copy(search_result["table"], files["lut"])
    shutil.copy(search_result["result"], files["result"])
    return files, {k: sha(p) for k, p in files.items()}


def unchanged(files, digests) -> None:
    assert {k: sha(p) for k, p in files.items()} == digests


@pytest.mark.parametrize("target, option, reads", [
    ("ckpt", "--out", "--checkpoint"), ("lut", "--out", "--lut"), ("lut", "--plot", "--lut"),
    ("ckpt", "--plot", "--checkpoint")])
def test_search_never_writes_onto_its_inputs(work, tmp_path, target, option, reads):
    files, digests = work
    args = ["search", "--checkpoint", files["ckpt"], "--lut", files["lut"], *SEARCH, "--out", tmp_path / "new.json"]
    if option == "--out":
        args[args.index("--out") + 1] = files[target]
    else:
        args += ["--plot", files[target]]
    refused(cli(*args, "--force"), f"is the file this command reads as {reads}", f"choose another {option}")
    unchanged(files, digests)
    assert not (tmp_path / "new.json").exists()
    no_temporaries(tmp_path)


def test_search_state_onto_an_input_is_refused(work, tmp_path):
    files, digests = work
    lut = tmp_path / "x.state.json"  # the state of --out x.json would be written here
    shutil.copy(files["lut"], lut)
    before = sha(lut)
    refused(cli("search", "--checkpoint", files["ckpt"], "--lut", lut, *SEARCH, "--out", tmp_path / "x.json"),
            "the search state beside --out", "reads as --lut")
    assert sha(lut) == before


def test_search_keeps_an_existing_result_unless_forced(work, tmp_path):
    """A result with no state beside it was silently overwritten; now refused, and --force replaces it."""
    files, digests = work
    args = ["search", "--checkpoint", files["ckpt"], "--lut", files["lut"], *SEARCH, "--out", files["result"]]
    line = refused(cli(*args), "r.json exists", "--force")
    refused(cli(*args, "--resume"), "no search state", "--force")
    unchanged(files, digests)
    r = cli(*args, "--force", "--seed", 5)  # the advice works
    assert r.exit_code == 0, r.output + line
    assert json.loads(files["result"].read_text())["seed"] == 5
    refused(cli(*args, "--force", "--resume"), "not both")


def test_search_resume_advice_is_consistent(work, tmp_path):
    """The refusals of a search whose state is there point to --resume or --force, and both work."""
    files, _ = work
    out = tmp_path / "s.json"
    base = ["search", "--checkpoint", files["ckpt"], "--lut", files["lut"], *SEARCH, "--out", out]
    assert cli(*base).exit_code == 0
    out.unlink()  # an interrupted search: its state only
    line = refused(cli(*base), "a search state is there", "--resume", "--force")
    line2 = refused(cli(*base, "--resume", "--seed", 9), "other settings than the interrupted search (seed)", "--force")
    assert "delete" not in line + line2
    assert cli(*base, "--resume").exit_code == 0 and out.exists()
    assert cli(*base, "--force", "--seed", 9).exit_code == 0
    assert json.loads(out.read_text())["seed"] == 9


@pytest.mark.parametrize("option, reads", [("--out", "--result"), ("--arch-out", "--result")])
def test_export_never_writes_onto_its_result(work, tmp_path, option, reads):
    files, digests = work
    args = ["export", "--result", files["result"], "--out", tmp_path / "w.onnx"]
    if option == "--out":
        args[-1] = files["result"]
    else:
        args += ["--arch-out", files["result"]]
    refused(cli(*args, "--force"), f"reads as {reads}")
    unchanged(files, digests)


def test_export_onto_the_search_checkpoint_and_existing_outputs(work, tmp_path, search_result):
    files, digests = work
    stored = json.loads(search_result["result"].read_text())["checkpoint"]
    before = sha(stored)
    refused(cli("export", "--result", search_result["result"], "--weights", "pruningnet", "--out", stored,
                "--force"), "reads as the search's checkpoint")
    assert sha(stored) == before
    out = tmp_path / "w.onnx"
    out.write_bytes(b"keep")
    refused(cli("export", "--result", files["result"], "--out", out), "exists", "--force")
    assert out.read_bytes() == b"keep"
    refused(cli("export", "--result", files["result"], "--out", tmp_path / "a.onnx", "--arch-out",
                tmp_path / "a.onnx"), "--arch-out and --out are the same file")
    assert cli("export", "--result", files["result"], "--out", out, "--force").exit_code == 0
    assert out.read_bytes()[:4] != b"keep"


@pytest.mark.parametrize("option", ["--record", "--plot"])
def test_validate_never_writes_onto_its_table(tmp_path, tiny_table, option):
    lut = tmp_path / "t.json.gz"
    shutil.copy(tiny_table, lut)
    before = sha(lut)
    for command in ("validate", "calibrate"):
        refused(cli(command, "--lut", lut, "--samples", 5, option, lut, "--force"), f"reads as --lut")
    assert sha(lut) == before
    no_temporaries(tmp_path)


def test_a_second_validate_keeps_the_first_record(tmp_path, tiny_table, tiny_records):
    """An explicit --record that exists (the record a stored calibration came from) is not replaced."""
    lut = tmp_path / "t.json.gz"
    shutil.copy(tiny_table, lut)
    rec = tmp_path / "rec.json"
    shutil.copy(tiny_records["calibrate"], rec)
    before = sha(rec)
    refused(cli("validate", "--lut", lut, "--samples", 3, "--record", rec), "rec.json exists", "--force")
    refused(cli("calibrate", "--lut", lut, "--samples", 5, "--record", rec), "rec.json exists", "--force")
    assert sha(rec) == before
    refused(cli("validate", "--from-record", rec, "--plot", rec), "reads as --from-record")
    r = cli("validate", "--lut", lut, "--samples", 3, "--record", rec, "--force")
    assert r.exit_code == 0, r.output
    assert sha(rec) != before and json.loads(rec.read_text())["calibration"] is None
    # without --record every run writes a new file beside the table
    for _ in range(2):
        assert cli("validate", "--lut", lut, "--samples", 3).exit_code == 0
    assert len(list(tmp_path.glob("t.validate-*.json"))) == 2


def test_calibrate_out_policy(tmp_path, tiny_table):
    lut, out = tmp_path / "t.json.gz", tmp_path / "c.json.gz"
    shutil.copy(tiny_table, lut)
    out.write_bytes(b"keep")
    refused(cli("calibrate", "--lut", lut, "--samples", 5, "--out", out), "c.json.gz exists", "--force")
    refused(cli("calibrate", "--lut", lut, "--samples", 5, "--out", out, "--record", out, "--force"),
            "same file")
    assert out.read_bytes() == b"keep"


def test_merge_never_writes_onto_a_shard_nor_takes_one_twice(tmp_path, tiny_table):
    a, b = tmp_path / "a.json.gz", tmp_path / "b.json.gz"
    shutil.copy(tiny_table, a)
    shutil.copy(tiny_table, b)  # a copy of the same build
    digests = {p: sha(p) for p in (a, b)}
    refused(cli("lut", "merge", a, b, "--out", b, "--force"), "reads as input 2")
    refused(cli("lut", "merge", a, a, "--out", tmp_path / "m.json.gz"), "given twice")
    refused(cli("lut", "merge", a, b, "--out", tmp_path / "m.json.gz"), "the same build", "merge each table once")
    assert {p: sha(p) for p in (a, b)} == digests and not (tmp_path / "m.json.gz").exists()


def test_merge_refuses_one_shard_twice_and_an_existing_out(tmp_path, tiny_table):
    from prune_lut.latency.lutfile import LUT

    lut = LUT.load(tiny_table)
    keys = sorted(lut.entries)
    for i, name in enumerate(("s1", "s1b", "s2")):  # shard 1/2 built twice (two dates), and shard 2/2
        part = LUT(lut.device, {**lut.provenance, "date": f"2026-12-0{i + 1}"}, lut.space,
                   {k: lut.entries[k] for k in keys[(name == "s2")::2]}, lut.reference, extra={
                       **lut.extra, "shard": "2/2" if name == "s2" else "1/2"})
        part.save(tmp_path / f"{name}.json.gz")
    refused(cli("lut", "merge", tmp_path / "s1.json.gz", tmp_path / "s1b.json.gz", "--out", tmp_path / "m.json.gz"),
            "both shard 1/2", "merge each shard once")
    out = tmp_path / "m.json.gz"
    out.write_bytes(b"keep")
    refused(cli("lut", "merge", tmp_path / "s1.json.gz", tmp_path / "s2.json.gz", "--out", out), "exists", "--force")
    assert out.read_bytes() == b"keep"
    r = cli("lut", "merge", tmp_path / "s1.json.gz", tmp_path / "s2.json.gz", "--out", out, "--force")
    assert r.exit_code == 0 and len(LUT.load(out).entries) == len(keys), r.output


def unwritable(tmp_path) -> dict:
    """Output paths no command can write, and what the refusal says: a folder given as the file, a
    path under a plain file, /proc (and, unless root, whom modes do not stop, a read-only folder)."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "plain").write_text("x")
    cases = {"folder": (tmp_path / "folder", "is a folder"), "under-a-file": (tmp_path / "plain" / "x", "is a file"),
             "proc": ("/proc/prune-lut-test", "cannot write in /proc")}
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        cases["read-only"] = (ro / "x", "cannot write in")
    return cases


CASES = ["folder", "under-a-file", "proc"]


@pytest.mark.parametrize("case", CASES)
def test_unwritable_outputs_refused_before_any_work(tmp_path, case, tiny_table, search_result, pn_checkpoint,
                                                    arch_file):
    """Each command refuses at once (no measuring, training or search: seconds, no progress output)."""
    path, needle = unwritable(tmp_path)[case]
    rec = search_result["result"]
    commands = [
        [*BUILD, "--resolution", 8, "--out", path],
        ["train", "--family", "mobilenet_v2", *TINY_TRAIN, "--epochs", 1, "--out", path],
        ["retrain", arch_file, "--data", "digits", "--epochs", 1, "--out", path],
        ["search", "--checkpoint", pn_checkpoint, "--lut", search_result["table"], *SEARCH, "--out", path],
        ["search", "--checkpoint", pn_checkpoint, "--lut", search_result["table"], *SEARCH, "--out",
         tmp_path / "ok.json", "--plot", path],
        ["validate", "--lut", tiny_table, "--record", path], ["validate", "--lut", tiny_table, "--plot", path],
        ["calibrate", "--lut", tiny_table, "--out", path],
        ["export", "--result", rec, "--out", path], ["export", "--result", rec, "--out", tmp_path / "w.onnx",
                                                      "--arch-out", path],
        ["lut", "merge", tiny_table, search_result["table"], "--out", path],
    ]
    for args in commands:
        r = cli(*args)
        refused(r, needle)
        assert not r.stdout, r.stdout  # nothing started
    assert not (tmp_path / "ok.json").exists() and not (tmp_path / "w.onnx").exists()
    no_temporaries(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_refused(tmp_path, tiny_table):
    path, needle = unwritable(tmp_path)["read-only"]
    refused(cli("validate", "--lut", tiny_table, "--record", path), needle)
    refused(cli(*BUILD, "--resolution", 8, "--out", path), needle)


def test_the_default_record_folder_is_checked_too(tmp_path, tiny_table):
    """validate writes its record beside the table by default: that folder is checked before measuring."""
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; /proc cannot hold a table to validate")
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(tiny_table, ro / "t.json.gz")
    ro.chmod(0o555)
    refused(cli("validate", "--lut", ro / "t.json.gz", "--samples", 3), "the record", "--record")


def test_missing_output_folders_are_created(tmp_path, search_result):
    out = tmp_path / "new" / "deeper" / "w.onnx"
    r = cli("export", "--result", search_result["result"], "--out", out)
    assert r.exit_code == 0 and out.is_file(), r.output


def test_quickstart_folder_must_be_a_folder(tmp_path):
    (tmp_path / "plain").write_text("x")
    refused(cli("quickstart", "--out", tmp_path / "plain"), "is a file, not a folder")
    refused(cli("quickstart", "--out", "/proc/prune-lut-qs"), "cannot")


def test_build_force_starts_over_and_resume_continues(tmp_path):
    out = tmp_path / "t.json.gz"
    out.write_bytes(b"not a table")
    refused(cli(*BUILD, "--resolution", 8, "--out", out), "exists", "--resume", "--force")
    refused(cli(*BUILD, "--resolution", 8, "--out", out, "--resume", "--force"), "not both")
    assert out.read_bytes() == b"not a table"


def test_too_large_resolution_leaves_no_table(tmp_path):
    """Refused at the door; before, the allocation failed inside the build, which left an empty table
    that blocked a plain rerun."""
    out = tmp_path / "big.json.gz"
    refused(cli(*BUILD, "--resolution", 100000, "--out", out), "--resolution", "1..4096")
    assert not out.exists()
    assert cli(*BUILD, "--resolution", 8, "--out", out).exit_code == 0  # a plain rerun works
    assert out.exists()


@pytest.mark.parametrize("existing", [False, True])
def test_a_build_whose_first_group_fails_leaves_no_table(tmp_path, existing):
    """A network ONNX Runtime cannot load fails the first group: no empty table is left to block a
    rerun, and with --force an existing table is not replaced by an empty one."""
    from conftest import TINY_SPACE, fast_cpu
    from prune_lut.latency.build import Network, build_table, open_table
    from prune_lut.latency.measure import get_meter
    from prune_lut.pruning.space import get_space
    from prune_lut.tables.coverage import all_specs
    from prune_lut.tables.networks import space_network

    sp, dev = get_space("mobilenet_v2", **TINY_SPACE), fast_cpu()
    out = tmp_path / "t.json.gz"
    if existing:
        out.write_bytes(b"the old table")
    meter = get_meter(dev)
    lut, targets = open_table(out, dev, meter, {**sp.describe(), "hash": sp.hash}, list(all_specs(sp)),
                              force=existing)
    broken = [Network("broken", ["conv-s8-c1x8-k3-st1-g1-relu6"], lambda: b"not an ONNX model")]
    with pytest.raises(Exception, match="(?i)protobuf|onnx|parse|load"):
        build_table(lut, out, meter, lambda keys: broken, targets, space_network(sp, sp.full(), 1), progress=False)
    assert (out.read_bytes() == b"the old table") if existing else not out.exists()
    no_temporaries(tmp_path)


# ---- the module itself ------------------------------------------------------------------------------
def test_write_atomic_removes_its_temporary_file_on_failure_and_keeps_the_target(tmp_path):
    target = tmp_path / "t.json"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, fail)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_written_files_get_the_umask_mode_not_the_private_temporary_one(tmp_path):
    old = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.json", lambda tmp: tmp.write_text("{}"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644
    (tmp_path / "kept.json").write_text("{}")
    (tmp_path / "kept.json").chmod(0o600)
    write_atomic(tmp_path / "kept.json", lambda tmp: tmp.write_text("[]"))
    assert stat.S_IMODE((tmp_path / "kept.json").stat().st_mode) == 0o600  # a replaced file keeps its mode


def test_same_file_sees_links_and_relative_paths(tmp_path, monkeypatch):
    a = tmp_path / "a"
    a.write_text("x")
    os.link(a, tmp_path / "hard")
    (tmp_path / "soft").symlink_to(a)
    monkeypatch.chdir(tmp_path)
    assert same_file("a", tmp_path / "hard") and same_file(tmp_path / "soft", "./a")
    assert same_file(tmp_path / "new", "new") and not same_file("a", "new")
    with pytest.raises(UserError, match="reads as --lut"):
        check_outputs([Output("--out", "soft", replace=True)], [("--lut", "a")])
