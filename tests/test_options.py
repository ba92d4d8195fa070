"""Options checked at the door (issue 13, items 4 and 5): NaN, infinities, zero and negative values
where they make no sense, absurd sizes and unknown devices are refused by the real CLI before anything
is loaded, measured or written: one line naming the option and the allowed range, exit 2."""
from __future__ import annotations

import pytest
import torch

from conftest import TINY_TRAIN, cli
from prune_lut.errors import ParamError
from prune_lut.pruning.data import load_data
from prune_lut.pruning.space import get_space

TRAIN = ["train", "--family", "mobilenet_v2", *TINY_TRAIN, "--epochs", 1]
SPACE = ["space", "mobilenet_v2"]
BUILD = ["build", "--device", "cpu", "--family", "mobilenet_v2", "--small-input", "--in-channels", 1,
         "--num-classes", 10, "--resolution", 8]

BAD = [  # (command line, what the one error line must say)
    (SPACE + ["--num-classes", 0], "--num-classes must be an integer in 1..100000, got 0"),
    (SPACE + ["--num-classes", -3], "--num-classes must be an integer in 1..100000, got -3"),
    (SPACE + ["--in-channels", 0], "--in-channels must be an integer in 1..1024, got 0"),
    (SPACE + ["--in-channels", -1], "--in-channels must be an integer in 1..1024"),
    (SPACE + ["--multiple", 100000], "--multiple must be an integer in 1..256, got 100000"),
    (SPACE + ["--resolution", 100000], "--resolution must be an integer in 1..4096, got 100000"),
    (SPACE + ["--resolution", "8.5"], "--resolution must be an integer in 1..4096, got '8.5'"),
    (BUILD[:-2] + ["--resolution", 100000], "--resolution must be an integer in 1..4096"),
    (BUILD + ["--time-budget", "nan"], "--time-budget must be a finite number > 0, got nan"),
    (BUILD + ["--time-budget", "inf"], "--time-budget must be a finite number > 0, got inf"),
    (BUILD + ["--time-budget", 0], "--time-budget must be a finite number > 0, got 0"),
    (BUILD + ["--heldout", -1], "--heldout must be an integer in 0..1000"),
    (BUILD + ["--seed", -1], "--seed must be an integer in 0..4294967295"),
    (TRAIN + ["--lr", -1], "--lr must be a finite number > 0, got -1"),
    (TRAIN + ["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
    (TRAIN + ["--weight-decay", "nan"], "--weight-decay must be a finite number >= 0, got nan"),
    (TRAIN + ["--weight-decay", -0.1], "--weight-decay must be a finite number >= 0"),
    (TRAIN[:-2] + ["--epochs", 0], "--epochs must be an integer in 1..100000, got 0"),
    (TRAIN + ["--hidden", 0], "--hidden must be an integer in 1..256, got 0"),
    (TRAIN + ["--hidden", 100000], "--hidden must be an integer in 1..256"),
    (TRAIN + ["--batch-size", 0], "--batch-size must be an integer in 1..1048576"),
    (TRAIN + ["--val-per-class", 0], "--val-per-class must be an integer >= 1, got 0; leave it out for the data "
                                     "set's default"),
    (["train", "--family", "mobilenet_v2", "--data", "digits", "--train-per-class", 0],
     "--train-per-class must be an integer >= 1, got 0; leave it out to train on the whole training set"),
    (TRAIN + ["--multiple", 100000], "--multiple must be an integer in 1..256, got 100000"),
    (TRAIN + ["--resolution", 100000], "--resolution must be an integer in 1..4096"),
    (TRAIN + ["--device", "tpu"], "--device must be auto, cpu or cuda, got 'tpu'"),
    (TRAIN + ["--macs-range", "nan:5"], "--macs-range nan:5: need finite 0 <= LO <= HI"),
    (["retrain", "a.json", "--epochs", 0], "--epochs must be an integer in 1..100000"),
    (["retrain", "a.json", "--device", "gpu"], "--device must be auto, cpu or cuda, got 'gpu'"),
    (["search", "--checkpoint", "x.pt", "--threads", 0], "--threads must be an integer in 1..256, got 0"),
    (["search", "--checkpoint", "x.pt", "--threads", -1], "--threads must be an integer in 1..256, got -1"),
    (["search", "--checkpoint", "x.pt", "--latency-ms", "nan"], "--latency-ms must be a finite number > 0, got nan"),
    (["search", "--checkpoint", "x.pt", "--macs-m", -1], "--macs-m must be a finite number > 0"),
    (["search", "--checkpoint", "x.pt", "--mutation-prob", 1.5], "--mutation-prob must be a finite number in [0, 1]"),
    (["search", "--checkpoint", "x.pt", "--population", 1], "--population must be an integer in 2..100000"),
    (["search", "--checkpoint", "x.pt", "--recal-batches", 0], "--recal-batches must be an integer in 1..10000"),
    (["search", "--checkpoint", "x.pt", "--verify", -1], "--verify must be an integer in 0..1000"),
    (["validate", "--from-record", "r.json", "--max-error", "nan"], "--max-error must be a finite number >= 0"),
    (["validate", "--from-record", "r.json", "--max-error", -5], "--max-error must be a finite number >= 0"),
    (["validate", "--lut", "t.json.gz", "--repeat-share", 2], "--repeat-share must be a finite number in [0, 1]"),
    (["validate", "--lut", "t.json.gz", "--samples", 0], "--samples must be an integer in 1..10000"),
    (["export", "--family", "mobilenet_v2", "--uniform", 0, "--out", "x.onnx"],
     "--uniform must be a finite number in (0, 1]"),
    (["export", "--result", "r.json", "--rank", 0, "--out", "x.onnx"], "--rank must be an integer >= 1, got 0"),
    (["quickstart", "--budget-share", 1], "--budget-share must be a finite number in (0, 1)"),
    (["quickstart", "--calibrate-samples", 2], "--calibrate-samples must be an integer in 5..10000"),
    (["train", "--data", "digits"], "Missing option '--family'"),
]


@pytest.mark.parametrize("args, message", BAD, ids=[" ".join(map(str, a[-2:])) for a, _ in BAD])
def test_bad_option_refused_at_the_door(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)  # nothing may be written: the folder stays empty
    r = cli(*args)
    err = r.stderr.strip().splitlines()
    assert r.exit_code == 2 and len(err) == 1 and err[0].startswith("error: "), r.output
    assert message in err[0], err[0]
    assert not r.stdout and "Traceback" not in r.output and not list(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a CUDA GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_refused(tmp_path, device):
    """Before, training started and died in torch with a traceback (no NVIDIA driver)."""
    r = cli(*TRAIN, "--device", device, "--out", tmp_path / "x.pt")
    assert r.exit_code == 2 and "sees no CUDA GPU" in r.stderr and "--device cpu" in r.stderr, r.output
    assert not (tmp_path / "x.pt").exists()


def test_the_library_refuses_the_same_values():
    """Python callers get the same limits (ParamError names the parameter; the CLI names the option)."""
    from prune_lut.pruning.distributed import check_device

    for bad in (dict(num_classes=0), dict(in_channels=-1), dict(multiple=100000), dict(resolution=100000),
                dict(num_classes=True)):
        with pytest.raises(ParamError) as e:
            get_space("mobilenet_v2", **bad)
        assert e.value.param == next(iter(bad))
    for kw in (dict(val_per_class=0), dict(train_per_class=0), dict(test_per_class=0)):
        with pytest.raises(ParamError, match="leave it out") as e:
            load_data("digits", **kw)  # was: 0 silently meant the default
        assert e.value.param == next(iter(kw))
    with pytest.raises(ParamError, match="auto, cpu or cuda"):
        check_device("tpu")
