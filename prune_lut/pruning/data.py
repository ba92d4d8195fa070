"""Image data for training and search: local files only, nothing is ever downloaded.

``load_data(spec)`` returns :class:`DataSplits`: the training set divided into *sub-train*
(what the PruningNet learns on) and a held-out *sub-validation* split (what the search scores
archs on, as MetaPruning does with 50 images per class on ImageNet), plus the test set. The
split is a list of indices into the training set, saved with every checkpoint so that search
and resumed training see exactly the same images.

Specs:
  ``digits``                 scikit-learn's bundled 8x8 digits (no set-up; 20% held out as test)
  ``fashion-mnist[:DIR]``    the four IDX files (``.gz`` or not); default DIR is where Debian's
                             ``dataset-fashion-mnist`` package installs them
  ``cifar10:DIR``            the python-version CIFAR-10 batches (torchvision, ``download=False``)
  ``imagefolder:DIR``        ``DIR/train/<class>/*`` and ``DIR/val/<class>/*`` (ImageNet layout)
"""
from __future__ import annotations

import gzip
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..errors import ParamError, UserError

log = logging.getLogger(__name__)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
                       "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
# Sub-validation images per class when the caller does not say: enough for a stable accuracy,
# few enough to leave the small sets their training images.
DEFAULT_VAL_PER_CLASS = {"digits": 20, "fashion-mnist": 100, "cifar10": 100, "imagefolder": 50}
SPEC_HELP = "use digits, fashion-mnist[:DIR], cifar10:DIR or imagefolder:DIR"


class TensorImages(Dataset):
    """Images held in memory as one float tensor (N, C, H, W) and int64 labels: fast batch slicing."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


@dataclass
class DataSplits:
    """Sub-train, sub-validation (held out of the training set) and test data of one spec."""

    spec: str
    train: Dataset
    val: Dataset
    test: Dataset
    num_classes: int
    in_channels: int
    resolution: int
    split: dict = field(default_factory=dict)  # {"train": [...], "val": [...]} indices into the training set

    def describe(self) -> dict:
        return {"spec": self.spec, "resolution": self.resolution, "num_classes": self.num_classes,
                "in_channels": self.in_channels, "train": len(self.train), "val": len(self.val),
                "test": len(self.test)}


# ---- readers -----------------------------------------------------------------------------
def _open_maybe_gz(path: Path) -> bytes:
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            try:
                return gzip.open(p).read() if p.suffix == ".gz" else p.read_bytes()
            except (OSError, EOFError) as e:
                raise UserError(f"{p}: cannot read ({e}); the file is damaged, reinstall the data set") from None
    raise FileNotFoundError(path)


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    raw = _open_maybe_gz(path)
    if len(raw) < 4 + 4 * ndim or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise UserError(f"{path}: not an IDX file of unsigned bytes with {ndim} dimension(s); "
                        "is this the Fashion-MNIST directory?")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise UserError(f"{path}: truncated ({len(body)} bytes of data, header says {int(np.prod(dims))}); "
                        "reinstall the data set")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _fashion_mnist(path: str) -> tuple[TensorImages, TensorImages, int]:
    d = Path(path)
    if not d.is_dir():
        raise UserError(f"fashion-mnist: directory {d} does not exist; install it with "
                        "`apt-get install dataset-fashion-mnist` or give fashion-mnist:DIR")
    arrays = {}
    for k, name in FASHION_MNIST_FILES.items():
        try:
            arrays[k] = _read_idx(d / name, 3 if k.endswith("x") else 1)
        except FileNotFoundError:
            raise UserError(f"fashion-mnist: {d / name}[.gz] is missing; DIR must hold the four IDX files "
                            f"({', '.join(FASHION_MNIST_FILES.values())})") from None
    for part in ("train", "test"):
        if len(arrays[f"{part}_x"]) != len(arrays[f"{part}_y"]):
            raise UserError(f"fashion-mnist: {part} images and labels differ in count in {d}; reinstall the data set")
    mk = lambda x, y: TensorImages(torch.from_numpy(x.copy()).unsqueeze(1),  # noqa: E731
                                   torch.from_numpy(y.astype(np.int64)))
    return mk(arrays["train_x"], arrays["train_y"]), mk(arrays["test_x"], arrays["test_y"]), 10


def _digits() -> tuple[TensorImages, TensorImages, int]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    # a fixed stratified 20% test split (independent of --seed: the test set never moves)
    test_idx = _per_class_take(y, lambda n: int(round(0.2 * n)), torch.Generator().manual_seed(12345))
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[test_idx] = False
    return TensorImages(x[mask], y[mask]), TensorImages(x[test_idx], y[test_idx]), 10


def _cifar10(path: str) -> tuple[TensorImages, TensorImages, int]:
    from torchvision.datasets import CIFAR10

    d = Path(path)
    if not d.is_dir():
        raise UserError(f"cifar10: directory {d} does not exist; give cifar10:DIR where DIR holds "
                        "cifar-10-batches-py (nothing is downloaded)")
    try:
        tr, te = CIFAR10(str(d), train=True, download=False), CIFAR10(str(d), train=False, download=False)
    except RuntimeError as e:
        raise UserError(f"cifar10: {d}: {e} (expected DIR/cifar-10-batches-py from the python version)") from None
    mk = lambda s: TensorImages(torch.from_numpy(s.data).permute(0, 3, 1, 2).contiguous(),  # noqa: E731
                                torch.tensor(s.targets, dtype=torch.int64))
    return mk(tr), mk(te), 10


class _Targets(Dataset):
    """An ImageFolder with its labels exposed as a tensor (for class-balanced splits)."""

    def __init__(self, folder):
        self.folder, self.y = folder, torch.tensor(folder.targets, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, i):
        return self.folder[i]


def _load_image(path: str):
    """An image file as RGB; a file that is not a readable image is refused in one line naming it
    (torchvision's loader raises deep inside the training loop)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"imagefolder: {path} is not a readable image ({first}); remove or replace it") from None


def _imagefolder(path: str, resolution: int) -> tuple[_Targets, _Targets, int]:
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    d = Path(path)
    for sub in ("train", "val"):
        if not (d / sub).is_dir():
            raise UserError(f"imagefolder: {d / sub} does not exist; DIR must hold train/<class>/ and val/<class>/")
    norm = transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    tr = transforms.Compose([transforms.RandomResizedCrop(resolution), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), norm])
    te = transforms.Compose([transforms.Resize(int(resolution * 256 / 224)), transforms.CenterCrop(resolution),
                             transforms.ToTensor(), norm])
    try:
        train, test = (ImageFolder(str(d / "train"), tr, loader=_load_image),
                       ImageFolder(str(d / "val"), te, loader=_load_image))
    except (FileNotFoundError, RuntimeError) as e:
        raise UserError(f"imagefolder: {d}: {e}") from None
    if train.classes != test.classes:
        raise UserError(f"imagefolder: {d}/train and {d}/val have different class folders")
    return _Targets(train), _Targets(test), len(train.classes)


# ---- splits ------------------------------------------------------------------------------
def _per_class_take(y: torch.Tensor, count, gen: torch.Generator) -> torch.Tensor:
    """Indices of ``count(n_c)`` random items of each class (sorted)."""
    out = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        out.append(idx[:count(len(idx))])
    return torch.cat(out).sort().values


def make_split(y: torch.Tensor, val_per_class: int, seed: int) -> dict:
    """Hold ``val_per_class`` images of each class out of the training set (same seed, same split)."""
    counts = torch.bincount(y)
    if val_per_class < 1 or val_per_class >= int(counts[counts > 0].min()):
        raise UserError(f"val_per_class {val_per_class} must be >= 1 and leave training images "
                        f"(the smallest class has {int(counts[counts > 0].min())})")
    val = _per_class_take(y, lambda n: val_per_class, torch.Generator().manual_seed(seed))
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[val] = False
    return {"train": torch.nonzero(mask).flatten().tolist(), "val": val.tolist(),
            "val_per_class": val_per_class, "seed": seed}


def _resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    return torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear",
                                           antialias=resolution < x.shape[-1], align_corners=False)


def parse_spec(spec: str) -> tuple[str, str | None]:
    if not isinstance(spec, str) or not spec:
        raise UserError(f"empty data spec; {SPEC_HELP}")
    kind, _, path = spec.partition(":")
    if kind not in DEFAULT_VAL_PER_CLASS:
        raise UserError(f"unknown data set {kind!r} in --data {spec!r}; {SPEC_HELP}")
    if kind == "digits" and path:
        raise UserError("digits is built in and takes no path; use --data digits")
    if kind in ("cifar10", "imagefolder") and not path:
        raise UserError(f"{kind} needs a local directory: --data {kind}:DIR (nothing is downloaded)")
    return kind, (path or None)


def load_data(spec: str, resolution: int | None = None, val_per_class: int | None = None, seed: int = 0,
              split: dict | None = None, train_per_class: int | None = None,
              test_per_class: int | None = None) -> DataSplits:
    """Load ``spec`` (see the module doc), resized to ``resolution`` (default: the images' own size).

    ``split`` (from a checkpoint) reuses saved sub-train/sub-val indices instead of drawing new ones.
    ``train_per_class`` keeps a random class-balanced subset of sub-train (CPU-sized experiments;
    recorded in the split), ``test_per_class`` likewise of the test set (fixed, seed-independent).
    Images are normalized to zero mean and unit variance per channel over the whole training set.
    """
    kind, path = parse_spec(spec)
    if resolution is not None and resolution < 1:
        raise UserError(f"resolution must be positive, got {resolution}")
    for name, v, whole in (("val_per_class", val_per_class, "the data set's default"),
                           ("train_per_class", train_per_class, "the whole training set"),
                           ("test_per_class", test_per_class, "the whole test set")):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ParamError(name, f"must be an integer >= 1, got {v!r} (leave it out for {whole})")
    if kind == "digits":
        train, test, ncls = _digits()
    elif kind == "fashion-mnist":
        train, test, ncls = _fashion_mnist(path or FASHION_MNIST_DIR)
    elif kind == "cifar10":
        train, test, ncls = _cifar10(path)
    else:
        train, test, ncls = _imagefolder(path, resolution or 224)
    y = train.y
    if split is None:
        split = make_split(y, DEFAULT_VAL_PER_CLASS[kind] if val_per_class is None else val_per_class, seed)
        if train_per_class is not None:
            tr = torch.tensor(split["train"])
            keep = _per_class_take(y[tr], lambda n: min(n, train_per_class), torch.Generator().manual_seed(seed + 1))
            split = {**split, "train": tr[keep].tolist(), "train_per_class": train_per_class}
    else:
        n = len(y)
        idx = list(split.get("train", [])) + list(split.get("val", []))
        if not split.get("train") or not split.get("val") or max(idx) >= n or len(set(idx)) != len(idx):
            raise UserError(f"the saved data split does not fit {spec!r} ({n} training images); "
                            "was the checkpoint trained on another data set?")
        split = {**split, "train": list(split["train"]), "val": list(split["val"])}
    tr_idx, va_idx = torch.tensor(split["train"]), torch.tensor(split["val"])
    if test_per_class is not None:
        keep = _per_class_take(test.y, lambda n: min(n, test_per_class), torch.Generator().manual_seed(54321))
        test = TensorImages(test.x[keep], test.y[keep]) if isinstance(test, TensorImages) else Subset(test, keep.tolist())

    if isinstance(train, TensorImages):
        res = resolution or train.x.shape[-1]
        dtype = torch.get_default_dtype()  # float32 unless a caller (e.g. a float64 test) says otherwise
        xf = train.x.to(dtype) / 255.0
        mean = xf.mean(dim=(0, 2, 3), keepdim=True)
        std = xf.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        prep = lambda x: _resize((x.to(dtype) / 255.0 - mean) / std, res).contiguous()  # noqa: E731
        xt = prep(train.x)
        sub_train, sub_val = TensorImages(xt[tr_idx], y[tr_idx]), TensorImages(xt[va_idx], y[va_idx])
        test = TensorImages(prep(test.x), test.y)
        channels = train.x.shape[1]
    else:  # imagefolder: lazy, transforms already resize; validation images use the test transform
        from torchvision.datasets import ImageFolder

        res = resolution or 224
        val_folder = ImageFolder(train.folder.root, test.folder.transform, loader=_load_image)
        sub_train, sub_val = Subset(train, tr_idx.tolist()), Subset(val_folder, va_idx.tolist())
        channels = 3
    log.info("data %s: %d sub-train, %d sub-val, %d test images, %d classes, %dx%d", spec, len(sub_train),
             len(sub_val), len(test), ncls, res, res)
    return DataSplits(spec, sub_train, sub_val, test, ncls, channels, res, split)


# ---- batches -----------------------------------------------------------------------------
def with_val_in_train(data: DataSplits) -> DataSplits:
    """``data`` with the sub-validation images moved into training (final retraining uses them all)."""
    if isinstance(data.train, TensorImages) and isinstance(data.val, TensorImages):
        train = TensorImages(torch.cat([data.train.x, data.val.x]), torch.cat([data.train.y, data.val.y]))
    else:
        train = torch.utils.data.ConcatDataset([data.train, data.val])
    return DataSplits(data.spec, train, data.val, data.test, data.num_classes, data.in_channels, data.resolution,
                      data.split)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of ``n`` items in ``epoch``: a function of (seed, epoch) only, so resume replays it."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def batches(ds: Dataset, batch_size: int, order: torch.Tensor | None = None, drop_last: bool = False,
            workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) batches of ``ds`` in ``order`` (default: as stored). In-memory data is sliced directly."""
    n = len(ds)
    order = torch.arange(n) if order is None else order
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    if isinstance(ds, TensorImages):
        for i in range(0, stop, batch_size):
            idx = order[i:i + batch_size]
            yield ds.x[idx], ds.y[idx]
        return
    sub = Subset(ds, order[:stop].tolist())
    yield from DataLoader(sub, batch_size=batch_size, shuffle=False, num_workers=workers)


def num_batches(ds: Dataset, batch_size: int, drop_last: bool = False) -> int:
    n = len(ds)
    if drop_last and n >= batch_size:
        return n // batch_size
    return -(-n // batch_size)


def cycle_batches(ds: Dataset, batch_size: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled batches (for BatchNorm recalibration): epoch after epoch, deterministic in ``seed``."""
    epoch = 0
    while True:
        yield from batches(ds, batch_size, epoch_order(len(ds), seed, epoch), drop_last=True)
        epoch += 1


def data_root_exists(spec: str) -> bool:
    """Whether ``spec``'s files are present (tests use it to skip cleanly)."""
    kind, path = parse_spec(spec)
    if kind == "digits":
        return True
    p = Path(path or FASHION_MNIST_DIR)
    if kind == "fashion-mnist":
        return all((p / n).is_file() or (p / (n + ".gz")).is_file() for n in FASHION_MNIST_FILES.values())
    return p.is_dir() and os.access(p, os.R_OK)
