import random

import pytest
import torch

from prune_lut.pruning.space import list_families

FAMILIES = list_families()


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


def settle_bn(net: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Give BatchNorm realistic running statistics (one train-mode pass), then eval: outputs stay O(1)."""
    net.train()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = None  # cumulative average: one batch sets the statistics
        net(x)
    return net.eval()


@pytest.fixture
def rng() -> random.Random:
    return random.Random(0)


# ---- small real files of every kind prune-lut shares, made once per session (tests copy before changing them)
FAST_PROTOCOL = {"warmup": 2, "chunk": 3, "min_reps": 6, "max_reps": 12, "rel_tol": 0.05, "max_seconds": 5.0}
# the quickstart space on a 3-ratio grid: ~220 keys, a table in seconds
TINY_SPACE = dict(small_input=True, resolution=8, in_channels=1, num_classes=10, multiple=8, grid=(0.25, 0.5, 1.0))
# `prune-lut train` on 40 digits images, 2 steps per epoch, a 2-unit MLP per PruningBlock (the quickstart space)
TINY_TRAIN = ["--data", "digits", "--train-per-class", "4", "--batch-size", "20", "--hidden", "2", "--multiple", "8",
              "--no-progress"]


def fast_cpu():
    """The `cpu` profile with a short protocol (what tables and validation runs of tests measure with)."""
    from prune_lut.devices import Device

    return Device(name="cpu-fast", backend="onnxruntime", provider="CPUExecutionProvider", threads=1, multiple=8,
                  protocol=FAST_PROTOCOL, source="test")


def cli(*args):
    """The real CLI in-process (click's CliRunner; stderr kept apart)."""
    from click.testing import CliRunner

    from prune_lut.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="session")
def tiny_table(shared_dir):
    """A really built table (ORT per-node profiles) of the tiny space."""
    from prune_lut.pruning.space import get_space
    from prune_lut.tables.build import build_space_table

    path = shared_dir / "tiny.json.gz"
    build_space_table(get_space("mobilenet_v2", **TINY_SPACE), fast_cpu(), path, heldout=2, progress=False)
    return path


@pytest.fixture(scope="session")
def tiny_records(shared_dir, tiny_table):
    """A validation record and a calibration record of the tiny table, and the calibrated table."""
    from prune_lut.tables.validate import calibrate_table, validate_table

    rec = shared_dir / "validate.json"
    validate_table(tiny_table, samples=4, seed=1, record_path=rec, progress=False)
    cal_rec, cal = shared_dir / "calibrate.json", shared_dir / "tiny-calibrated.json.gz"
    calibrate_table(tiny_table, samples=6, seed=2, record_path=cal_rec, out=cal, progress=False)
    return {"validate": rec, "calibrate": cal_rec, "calibrated": cal}


@pytest.fixture(scope="session")
def pn_checkpoint(shared_dir):
    """A PruningNet checkpoint of the quickstart space, trained one epoch by `prune-lut train`."""
    out = shared_dir / "pn.pt"
    r = cli("train", "--family", "mobilenet_v2", *TINY_TRAIN, "--epochs", 1, "--out", out)
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def arch_file(shared_dir):
    """An arch JSON of the quickstart space (uniform x0.25)."""
    from prune_lut.pruning.arch import save_arch
    from prune_lut.pruning.space import get_space

    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    path = shared_dir / "arch.json"
    save_arch(path, sp, sp.uniform(0.25))
    return path


@pytest.fixture(scope="session")
def plain_checkpoint(shared_dir, arch_file):
    """A plain network's checkpoint (`prune-lut retrain`, one epoch): small, for tests that rewrite checkpoints."""
    out = shared_dir / "plain.pt"
    r = cli("retrain", arch_file, "--data", "digits", "--epochs", 1, "--batch-size", 256, "--out", out,
            "--no-progress")
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="session")
def shipped_small_table():
    """The shipped `cpu` table of the quickstart space."""
    from prune_lut.lut_data import find_table
    from prune_lut.pruning.space import get_space

    path = find_table(get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True,
                                multiple=8), "cpu")
    if path is None:
        pytest.skip("no shipped cpu table for the quickstart space in prune_lut/lut_data")
    return path


@pytest.fixture(scope="session")
def search_result(shared_dir, pn_checkpoint, shipped_small_table):
    """A finished search (result and its state) of the PruningNet checkpoint on the shipped table."""
    import shutil

    table = shared_dir / "qs.json.gz"
    shutil.copy(shipped_small_table, table)
    out = shared_dir / "result.json"
    r = cli("search", "--checkpoint", pn_checkpoint, "--lut", table, "--latency-ms", 1.0, "--population", 4,
            "--generations", 1, "--parents", 2, "--out", out)
    assert r.exit_code == 0, r.output
    return {"result": out, "state": shared_dir / "result.state.json", "table": table}


def sha(path) -> str:
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()
