"""One schema per shared file kind (prune_lut/schemas.py), checked on load: the files prune-lut ships
and writes load unchanged, and a damaged file of any kind is one line naming the file, the field
and what was expected vs found (issue 13, items 4 and 7)."""
from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_SPACE, cli, sha
from prune_lut import schemas
from prune_lut.errors import UserError
from prune_lut.latency.lutfile import LUT
from prune_lut.latency.spec import LayerSpec
from prune_lut.pruning.space import get_space, list_families
from prune_lut.pruning.train import load_checkpoint
from prune_lut.tables.coverage import all_specs

SHIPPED = sorted((Path(schemas.__file__).parent / "lut_data").glob("*.json.gz"))


def one_line(r, *needles) -> str:
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(err) == 1 and err[0].startswith("error: "), r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def write_gz(path, obj) -> Path:
    with gzip.open(path, "wt") as f:
        json.dump(obj, f)
    return path


def table_dict(path) -> dict:
    return json.loads(gzip.decompress(Path(path).read_bytes()))


# ---- what ships and what the code writes loads -----------------------------------------------------
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_tables_load(path):
    lut = LUT.load(path)
    assert len(lut.entries) == lut.space["keys"] > 5000


def test_files_the_code_writes_load(tiny_table, tiny_records, search_result, pn_checkpoint, plain_checkpoint,
                                    arch_file):
    for path in (tiny_table, tiny_records["calibrated"]):
        assert LUT.load(path).entries
    assert LUT.load(tiny_records["calibrated"]).calibration["meta"]["frame"]["source"] == "calibrate"
    for kind, path in (("record", tiny_records["validate"]), ("record", tiny_records["calibrate"]),
                       ("result", search_result["result"]), ("state", search_result["state"]), ("arch", arch_file)):
        assert schemas.load(path, kind) == json.loads(Path(path).read_text())
    assert load_checkpoint(pn_checkpoint).kind == "pruningnet" and load_checkpoint(plain_checkpoint).kind == "plain"


def test_the_key_pattern_is_the_spec_key():
    """Every key a space can produce matches the schema's pattern, and the pattern's keys parse back."""
    import re

    for family in list_families():
        for key in all_specs(get_space(family, small_input=True, resolution=16, grid=(0.5, 1.0))):
            assert re.match(schemas.KEY_PATTERN, key), key
            assert LayerSpec.from_key(key).key == key


def test_json_schema_for_other_teams():
    out = subprocess.run([sys.executable, "-m", "prune_lut.schemas", "table"], capture_output=True, text=True,
                         check=True).stdout
    s = json.loads(out)
    assert {"entries", "device", "space"} <= set(s["properties"]) and "schema" in s["required"]
    assert set(schemas.json_schemas()) == {"table", "arch", "result", "state", "record", "checkpoint"}


# ---- one line naming the file, the field, expected vs found ------------------------------------------
def test_damaged_table_fields_named(tmp_path, tiny_table):
    d = table_dict(tiny_table)
    key = next(iter(d["entries"]))
    cases = [
        (lambda t: t["entries"][key].update(median_ms=float("nan")), f"entries.{key}.median_ms: expected a finite "
                                                                      "number, found nan"),
        (lambda t: t["entries"][key].update(median_ms=-1), "median_ms: expected a number >= 0, found -1"),
        (lambda t: t["entries"][key].update(reps="5"), "reps: expected an integer, found '5'"),
        (lambda t: t["entries"][key].pop("source"), f"entries.{key}.source: missing"),
        (lambda t: t.update(entries=[1, 2]), "entries: expected an object, found a list of 2 items"),
        (lambda t: t.update(device=5), "device: expected an object, found 5"),
        (lambda t: t["space"].update(resolution=100000), "space.resolution: expected a number <= 4096"),
        (lambda t: t["extra"]["networks"][0].update(keys="x"), "extra.networks[0].keys: expected a list"),
        # finite but overflowing: merge's Theil-Sen fit raised on it (found by tests/test_fuzz.py)
        (lambda t: t["extra"]["networks"][0].update(e2e_ms=1e308), "extra.networks[0].e2e_ms: expected a number "
                                                                   "<= 1e+09, found 1e+308"),
        (lambda t: t["reference"].pop("first_ms"), "reference.first_ms: missing"),
    ]
    for i, (mutate, needle) in enumerate(cases):
        t = json.loads(json.dumps(d))
        mutate(t)
        p = write_gz(tmp_path / f"t{i}.json.gz", t)
        for args in (["lut", "info", p], ["predict", "--lut", p, "x.json"], ["lut", "merge", p, tiny_table,
                                                                               "--out", tmp_path / "m.json.gz"]):
            one_line(cli(*args), str(p), needle, "rebuild it or fetch it again")


def test_schema_errors_say_the_schema_found(tmp_path, search_result, tiny_records):
    one_line(cli("validate", "--from-record", search_result["result"]),
             "schema prune-lut.search/1 found: this is a search result, not a validation record")
    one_line(cli("export", "--result", tiny_records["validate"], "--out", tmp_path / "w.onnx"),
             "schema prune-lut.validation/2 found: this is a validation record, not a search result")
    p = write_gz(tmp_path / "t.json.gz", {"schema": "prune-lut.lut/7"})
    one_line(cli("lut", "info", p), "schema 'prune-lut.lut/7' found", "reads lookup tables of schema prune-lut.lut/1")
    old = json.loads(Path(tiny_records["validate"]).read_text())
    (tmp_path / "old.json").write_text(json.dumps({**old, "schema": "prune-lut.validation/1"}))
    one_line(cli("validate", "--from-record", tmp_path / "old.json"), "a validation record of prune-lut 0.1")


def test_a_folder_given_as_a_table_says_so(tmp_path):
    for args in (["lut", "info", tmp_path], ["predict", "--lut", tmp_path, "a.json"],
                 ["validate", "--lut", tmp_path, "--samples", 3, "--record", tmp_path / "r.json"]):
        one_line(cli(*args), "is a folder, not a LUT file")


@pytest.mark.parametrize("field, value, needle", [
    ("measured_ms", float("nan"), "samples[1].measured_ms: expected a finite number, found nan"),
    ("measured_ms", -1.0, "samples[1].measured_ms: expected a number > 0, found -1.0"),
    ("measured_ms", "fast", "samples[1].measured_ms: expected a number, found 'fast'"),
    ("features", None, "samples[1].features: expected an object, found null"),
])
def test_damaged_validation_samples_refused(tmp_path, tiny_records, field, value, needle):
    """A sample measured at NaN or -1 ms was reported as '+nan%'."""
    rec = json.loads(Path(tiny_records["calibrate"]).read_text())
    rec["samples"][1][field] = value
    p = tmp_path / "rec.json"
    p.write_text(json.dumps(rec))
    one_line(cli("validate", "--from-record", p), needle, "measure again with `prune-lut validate`")


def test_record_cross_checks(tmp_path, tiny_records):
    rec = json.loads(Path(tiny_records["calibrate"]).read_text())
    for mutate, needle in ((lambda r: r["repeats"].append({**r["repeats"][0], "index": 99}), "measures sample 99"),
                           (lambda r: r.update(samples=r["samples"][:4], repeats=[]), "at least 5 samples"),
                           (lambda r: r.update(drift="global"), "drift: expected one of 'none' or 'local'")):
        r = json.loads(json.dumps(rec))
        mutate(r)
        (tmp_path / "r.json").write_text(json.dumps(r))
        one_line(cli("validate", "--from-record", tmp_path / "r.json"), needle)


def test_deep_nesting_refused_in_every_reader(tmp_path, tiny_table):
    deep = {"a": 1}
    for _ in range(100):
        deep = {"x": deep}
    t = table_dict(tiny_table)
    t["provenance"]["nested"] = deep  # a free-form section: only the nesting limit stops it
    p = write_gz(tmp_path / "t.json.gz", t)
    one_line(cli("lut", "info", p), "nested deeper than 64 levels")
    one_line(cli("lut", "merge", p, tiny_table, "--out", tmp_path / "m.json.gz"), "nested deeper than 64 levels")
    (tmp_path / "a.json").write_text("[" * 100000 + "]" * 100000)
    one_line(cli("predict", "--lut", tiny_table, tmp_path / "a.json"), "nested deeper")
    p = tmp_path / "d.json.gz"
    p.write_bytes(gzip.compress(b"[" * 5000 + b"]" * 5000))
    one_line(cli("lut", "info", p), "nested")


def test_gzip_bomb_refused_without_growing_memory(tmp_path):
    """A 1 MB file that decompresses to 1 GB grew the process by 1 GB before it was refused; now it
    stops decompressing at the 64 MB limit."""
    bomb = tmp_path / "bomb.json.gz"
    bomb.write_bytes(gzip.compress(b'{"schema": "' + b" " * (1 << 30) + b'"}', 9))
    assert bomb.stat().st_size < 2 << 20
    code = ("import resource, sys; from prune_lut.cli import main; from click.testing import CliRunner; "
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            f"r = CliRunner().invoke(main, ['lut', 'info', {str(bomb)!r}]); "
            "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before; "
            "print(r.exit_code, grown >> 10, r.stderr.strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split(" ", 2)
    assert out[0] == "2" and "decompresses to more than 64 MB" in out[2], out
    assert int(out[1]) < 200, f"grew by {out[1]} MB"


def test_lut_info_counts_only_keys_of_the_space(tmp_path, tiny_table):
    """An entry renamed to a key no arch of the space produces covers nothing (it counted as covered)."""
    t = table_dict(tiny_table)
    key = sorted(t["entries"])[0]
    spec = LayerSpec.from_key(key)
    foreign = LayerSpec(spec.op, spec.size, spec.cin + 1, spec.cout, spec.kernel, spec.stride,
                        spec.groups if spec.groups == 1 else spec.cin + 1, spec.act, spec.residual).key
    t["entries"][foreign] = t["entries"].pop(key)
    p = write_gz(tmp_path / "t.json.gz", t)
    r = cli("lut", "info", p, "--json")
    assert r.exit_code == 0, r.output
    c = json.loads(r.stdout)["coverage"]
    assert c["entries"] == c["space_keys"] and c["in_space"] == c["space_keys"] - 1 and not c["complete"]
    assert c["not_in_space"] == 1 and c["foreign_keys"] == [foreign]
    r = cli("lut", "info", p)
    assert "1 not keys of this space" in r.stdout and "(INCOMPLETE)" in r.stdout
    r = cli("lut", "info", tiny_table, "--json")
    assert json.loads(r.stdout)["coverage"]["complete"]


def test_another_space_names_the_option_that_differs(tmp_path, pn_checkpoint, shipped_small_table):
    from prune_lut.pruning.arch import save_arch

    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=16)
    save_arch(tmp_path / "a.json", sp, sp.full())
    one_line(cli("predict", "--lut", shipped_small_table, tmp_path / "a.json"),
             "--multiple 8 in", "16 in the arch")
    lut = LUT.load(shipped_small_table)
    lut.space = {**lut.space, "multiple": 16, "hash": sp.hash}
    lut.save(tmp_path / "t16.json.gz")
    one_line(cli("search", "--checkpoint", pn_checkpoint, "--lut", tmp_path / "t16.json.gz", "--latency-ms", 1,
                 "--out", tmp_path / "r.json"), "the table covers another space (--multiple 16 in the table, 8 in "
                                                  "this one")


# ---- checkpoints: header and state ----------------------------------------------------------------------
def rewrite(src, dst, change) -> Path:
    state = torch.load(src, weights_only=True)
    change(state)
    torch.save(state, dst)
    return dst


def header(change):
    def f(state):
        h = json.loads(state["header"])
        change(h)
        state["header"] = json.dumps(h)
    return f


CHECKPOINT_DAMAGE = [
    (header(lambda h: h["config"].update(lr="0.05")), "(header): config.lr: expected a number, found '0.05'"),
    (header(lambda h: h["config"].update(hidden=0)), "config.hidden: expected a number >= 1"),
    (header(lambda h: h["config"].update(bn=["choice"])), "config.bn: expected one of"),  # a traceback (fuzz)
    (header(lambda h: h.pop("space_hash")), "space_hash: missing"),
    (header(lambda h: h.update(epoch=7)), "history holds 1 epochs, the header says 7"),
    (header(lambda h: h["space"].update(multiple=0)), "space.multiple: expected a number >= 1, found 0"),
    (header(lambda h: h.update(format="other")), "format 'other' found"),
    (lambda s: s.pop("split"), "split: expected the data split"),
    (lambda s: s["split"].update(train=s["split"]["train"].float()), "split.train: expected a non-empty 1-D int64 tensor"),
    (lambda s: s.update(rng=torch.zeros(3)), "rng: expected the state of torch's random generator"),
    (lambda s: s["optimizer"].pop("param_groups"), "optimizer: expected an SGD state dict"),
    (lambda s: s["optimizer"]["param_groups"][0]["params"].pop(), "its optimizer state does not fit its network"),
    (lambda s: s["optimizer"]["state"][0].update(momentum_buffer=torch.zeros(3, 3, 3)), "optimizer state 0 does "
                                                                                        "not fit parameter 0"),
    (lambda s: s["model"].update({k: torch.zeros(2, 2) for k in list(s["model"])[:1]}), "its weights do not fit"),
]


@pytest.mark.parametrize("change, needle", CHECKPOINT_DAMAGE, ids=[n[:40] for _, n in CHECKPOINT_DAMAGE])
def test_damaged_checkpoints_refused_in_one_line(tmp_path, plain_checkpoint, arch_file, change, needle):
    """retrain --resume (and search --checkpoint) died with KeyError or a size mismatch mid-run."""
    ck = rewrite(plain_checkpoint, tmp_path / "c.pt", change)
    before = sha(ck)
    one_line(cli("retrain", arch_file, "--data", "digits", "--epochs", 2, "--out", ck, "--resume", "--no-progress"),
             str(ck), needle)
    one_line(cli("search", "--checkpoint", ck, "--lut", "x.json.gz", "--latency-ms", 1, "--out",
                 tmp_path / "r.json"), needle)
    assert sha(ck) == before


def test_a_non_image_in_an_imagefolder_is_named(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for c in ("a", "b"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(3):
                Image.new("RGB", (12, 12), (40 * i, 100 if c == "a" else 0, 0)).save(tmp_path / split / c / f"{i}.png")
    (tmp_path / "train" / "b" / "9.png").write_bytes(b"this is not a PNG")
    r = cli("train", "--family", "mobilenet_v2", "--data", f"imagefolder:{tmp_path}", "--resolution", 8,
            "--small-input", "--val-per-class", 1, "--batch-size", 2, "--hidden", 2, "--multiple", 8, "--epochs", 1,
            "--no-progress", "--val-archs", "none", "--out", tmp_path / "pn.pt")
    one_line(r, "9.png is not a readable image", "remove or replace it")


def test_a_checkpoint_lacking_config_fields_of_later_versions_resumes(tmp_path, plain_checkpoint, arch_file):
    """momentum and label_smoothing came later: a header without them takes the schema's defaults
    (0.9, 0.1) instead of a KeyError mid-resume (found by tests/test_fuzz.py at 15x)."""
    ck = rewrite(plain_checkpoint, tmp_path / "c.pt", header(lambda h: [h["config"].pop(k) for k in
                                                                        ("momentum", "label_smoothing")]))
    r = cli("retrain", arch_file, "--data", "digits", "--epochs", 2, "--out", ck, "--resume", "--no-progress")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(ck).epoch == 2
