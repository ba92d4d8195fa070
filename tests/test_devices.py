"""Device profiles: every built-in loads, user profiles and --device-file, listing and refusals."""
import json

import pytest
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.devices import BACKENDS, get_device, list_devices, load_device_file
from prune_lut.errors import UserError
from prune_lut.latency.measure import usable

BUILTINS = ["cpu", "jetson", "jetson-cpu", "rpi5", "cuda", "torch-cuda", "torch-cpu"]


@pytest.fixture(autouse=True)
def no_user_dir(tmp_path, monkeypatch):
    d = tmp_path / "userdevs"
    d.mkdir()
    monkeypatch.setenv("PRUNE_LUT_DEVICES", str(d))
    return d


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_profiles(name):
    d = get_device(name)
    assert d.name == name and d.source == "builtin"
    assert d.backend in BACKENDS and d.multiple >= 1 and d.batch == 1
    assert d.protocol["min_reps"] <= d.protocol["max_reps"]
    ok, why = usable(d)
    assert isinstance(ok, bool) and why
    if d.remote_only:  # a board profile is never measured here under the board's name
        assert not ok and "--host" in why


def test_cpu_profile_is_repeatable_single_thread():
    d = get_device("cpu")
    assert (d.backend, d.provider, d.threads, d.multiple) == ("onnxruntime", "CPUExecutionProvider", 1, 8)
    assert usable(d)[0]


def test_torch_cuda_usable_iff_gpu():
    torch = pytest.importorskip("torch")
    assert usable(get_device("torch-cuda"))[0] == torch.cuda.is_available()


def test_user_profiles_and_device_file(no_user_dir, tmp_path):
    (no_user_dir / "myboard.toml").write_text(
        'backend = "onnxruntime"\nthreads = 2\nmultiple = 16\nhost = "me@board"\n[protocol]\nwarmup = 3\n')
    devs = list_devices()
    assert set(BUILTINS) <= set(devs) and devs["myboard"].multiple == 16
    assert devs["myboard"].host == "me@board" and usable(devs["myboard"])[0]
    f = tmp_path / "other.toml"
    f.write_text('name = "lab-x86"\nbackend = "torch"\ndevice = "cpu"\nthreads = 1\n')
    assert get_device(device_file=f).name == "lab-x86"
    assert get_device(str(f)).backend == "torch"
    with pytest.raises(UserError, match="disagree"):
        get_device("cpu", device_file=f)


@pytest.mark.parametrize("text, msg", [
    ('backend = "onnx"\n', "backend must be one of"),
    ('backend = "onnxruntime"\nthreds = 1\n', "unknown field 'threds'"),
    ('backend = "onnxruntime"\n[protocol]\nrepeats = 3\n', "unknown \\[protocol\\] field 'repeats'"),
    ('backend = "onnxruntime"\nprecision = "fp8"\n', "precision must be one of"),
    ('backend = "onnxruntime"\nmultiple = 0\n', "multiple must be a positive integer"),
    ('backend = [1\n', "not valid TOML"),
])
def test_bad_profiles_refused(tmp_path, text, msg):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError, match=msg):
        load_device_file(f)


def test_user_profile_may_not_shadow_builtin(no_user_dir):
    (no_user_dir / "cpu.toml").write_text('backend = "onnxruntime"\n')
    with pytest.raises(UserError, match="already taken"):
        list_devices()


def test_devices_cli(no_user_dir):
    (no_user_dir / "myboard.toml").write_text('backend = "tensorrt"\nprecision = "fp16"\n')
    r = CliRunner().invoke(main, ["devices", "--json"])
    assert r.exit_code == 0, r.output
    rows = {d["name"]: d for d in json.loads(r.output)["devices"]}
    assert set(BUILTINS) | {"myboard"} == set(rows)
    assert rows["cpu"]["usable"] is True
    assert rows["myboard"]["source"].endswith("myboard.toml")
    r = CliRunner().invoke(main, ["devices"])
    assert r.exit_code == 0 and "NOT usable here" in r.output and "usable here" in r.output


def test_unknown_device_one_line():
    r = CliRunner().invoke(main, ["build", "--device", "tpu9", "--family", "mobilenet_v2"])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "unknown device 'tpu9'" in r.output
