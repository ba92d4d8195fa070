"""Data specs: digits built in, Fashion-MNIST IDX files (skipped when absent), clear errors, saved splits."""
import gzip
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from prune_lut.cli import main
from prune_lut.errors import UserError
from prune_lut.pruning.data import FASHION_MNIST_DIR, data_root_exists, load_data

HAVE_FMNIST = data_root_exists("fashion-mnist")


def test_digits_split_is_class_balanced_disjoint_and_seeded():
    d = load_data("digits", val_per_class=7, seed=1)
    assert (d.num_classes, d.in_channels, d.resolution) == (10, 1, 8)
    assert d.train.x.shape[1:] == (1, 8, 8)
    assert torch.bincount(d.val.y).tolist() == [7] * 10
    assert not set(d.split["train"]) & set(d.split["val"])
    assert len(d.train) + len(d.val) == 1797 - len(d.test)
    again = load_data("digits", val_per_class=7, seed=1)
    other = load_data("digits", val_per_class=7, seed=2)
    assert again.split["val"] == d.split["val"] and other.split["val"] != d.split["val"]
    assert torch.equal(other.test.y, d.test.y)  # the test set never moves with the seed
    reused = load_data("digits", split=d.split)
    assert torch.equal(reused.val.x, d.val.x)
    assert abs(float(d.train.x.mean())) < 0.1 and abs(float(d.train.x.std()) - 1) < 0.1


def test_digits_resize_and_subset():
    d = load_data("digits", resolution=16, train_per_class=5, test_per_class=3)
    assert d.train.x.shape == (50, 1, 16, 16) and len(d.test) == 30
    assert torch.bincount(d.train.y).tolist() == [5] * 10


@pytest.mark.parametrize("spec,needle", [
    ("mnist", "unknown data set"), ("cifar10", "needs a local directory"),
    ("cifar10:/nonexistent/c10", "/nonexistent/c10"), ("imagefolder:/nonexistent/inet", "/nonexistent/inet"),
    ("fashion-mnist:/nonexistent/fm", "/nonexistent/fm"), ("digits:/x", "takes no path")])
def test_bad_specs_are_one_clear_error(spec, needle):
    with pytest.raises(UserError, match=needle):
        load_data(spec)


def test_malformed_fashion_mnist_files(tmp_path):
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    images = b"\x00\x00\x08\x03" + (1).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2 + bytes(4)
    (tmp_path / names[0]).write_bytes(images[:-1])  # one byte short
    (tmp_path / names[1]).write_bytes(b"\x00\x00\x08\x01" + (1).to_bytes(4, "big") + bytes(1))
    (tmp_path / names[2]).write_bytes(images)
    with pytest.raises(UserError, match="truncated"):
        load_data(f"fashion-mnist:{tmp_path}")
    (tmp_path / names[0]).write_bytes(images)
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte.*missing"):
        load_data(f"fashion-mnist:{tmp_path}")
    with gzip.open(tmp_path / (names[3] + ".gz"), "wb") as f:
        f.write(b"garbage!")
    with pytest.raises(UserError, match="not an IDX file"):
        load_data(f"fashion-mnist:{tmp_path}")


def test_cli_missing_dataset_is_one_line_exit_2(tmp_path):
    r = CliRunner().invoke(main, ["train", "--family", "mobilenet_v2", "--data", "fashion-mnist:/nonexistent/fm",
                                  "--out", str(tmp_path / "c.pt")])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "error: fashion-mnist" in r.output and "apt-get install" in r.output
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.skipif(not HAVE_FMNIST, reason=f"Fashion-MNIST not installed at {FASHION_MNIST_DIR} "
                    "(apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_reads_the_idx_files():
    d = load_data("fashion-mnist", resolution=14, train_per_class=20, test_per_class=10)
    assert (d.num_classes, d.in_channels, d.resolution) == (10, 1, 14)
    assert d.train.x.shape == (200, 1, 14, 14) and len(d.val) == 1000 and len(d.test) == 100
    full = load_data("fashion-mnist")
    assert len(full.train) + len(full.val) == 60000 and len(full.test) == 10000
    assert full.train.x.shape[-1] == 28 and Path(FASHION_MNIST_DIR).is_dir()
