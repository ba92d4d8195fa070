"""Training: PruningNet meta-training (``prune-lut train``) and plain-network training (``retrain``).

Both share one loop (:func:`_fit`): SGD with momentum, label smoothing, a per-step cosine
learning-rate schedule, weight decay on weights only (the PruningBlocks' MLPs and the classifier;
none on biases and BatchNorm), an atomic checkpoint after every epoch, and an exact ``resume``:
the data order of epoch *e* and the coding vector of step *s* are functions of (seed, e) and
(seed, s) alone, so a resumed run replays what the uninterrupted run would have done. Under
torchrun every process draws the same coding vector, takes its share of each global batch, and
(for the PruningNet) BatchNorm statistics are summed over processes, so N processes train what
one process would.

Checkpoints are ``torch.save`` of tensors and plain containers only (loaded with
``weights_only=True``): ``{"header": JSON text, "model": state dict, "optimizer": state dict,
"split": {"train": int tensor, "val": int tensor, ...}, "rng": torch RNG state}``. The header
names the kind (``pruningnet`` or ``plain``), the space (description and hash), the data spec,
the training options, the finished epoch count and the per-epoch history.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ..errors import UserError
from .bn import recalibrate_bn
from .data import DataSplits, batches, cycle_batches, epoch_order, load_data, num_batches, with_val_in_train
from .distributed import Dist, setup
from .net import PrunedNet, build_net
from .pruningnet import PruningNet
from .space import ChannelSpace

log = logging.getLogger(__name__)

FORMAT, VERSION = "prune-lut-checkpoint", 1
DEFAULTS = {"epochs": 10, "batch_size": 128, "lr": 0.05, "seed": 0, "weight_decay": 5e-4, "hidden": 32,
            "momentum": 0.9, "label_smoothing": 0.1}
# The archs each PruningNet step trains (ArchSampler) and whether the pruned ones learn from the
# widest's predictions: chosen A/B in docs/BENCHMARKS.md ("PruningNet training rules").
TRAINING_RULE = {"rule": "sandwich", "random_archs": 2, "distill": True}
RECAL_BATCHES = 20  # BatchNorm recalibration batches before each epoch's validation of a generated network


# ---- checkpoints -------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """A loaded checkpoint: header fields, the rebuilt space, and the trained module."""

    path: Path
    header: dict
    space: ChannelSpace
    state: dict
    pruningnet: PruningNet | None = None
    net: PrunedNet | None = None

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def data_spec(self) -> str:
        return self.header["data_spec"]

    @property
    def epoch(self) -> int:
        return int(self.header["epoch"])

    @property
    def arch(self) -> dict[str, int] | None:
        return self.header.get("arch")

    @property
    def split(self) -> dict:
        s = self.state["split"]
        return {**{k: v for k, v in s.items() if k not in ("train", "val")},
                "train": s["train"].tolist(), "val": s["val"].tolist()}

    def load_data(self) -> DataSplits:
        """The checkpoint's data at its resolution, with the saved sub-train/sub-val split."""
        return load_data(self.data_spec, resolution=self.space.resolution, split=self.split)


def save_checkpoint(path: str | os.PathLike, header: dict, model: nn.Module, optimizer, split: dict) -> None:
    """Write a checkpoint through a temporary file and a rename: the previous one survives any failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    obj = {"header": json.dumps(header), "model": model.state_dict(),
           "optimizer": optimizer.state_dict() if optimizer is not None else {},
           "split": {"train": torch.tensor(split["train"], dtype=torch.int64),
                     "val": torch.tensor(split["val"], dtype=torch.int64),
                     **{k: v for k, v in split.items() if k not in ("train", "val")}},
           "rng": torch.get_rng_state()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by ``train``/``retrain`` (weights only; no pickled code runs)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such checkpoint; train one with `prune-lut train`")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
        header = json.loads(state["header"])
    except Exception as e:  # noqa: BLE001 - any failure here means a damaged or foreign file
        raise UserError(f"{p}: not a readable prune-lut checkpoint ({type(e).__name__}); is it the right file?") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{p}: not a prune-lut checkpoint (format {header.get('format') if isinstance(header, dict) else None!r})")
    if header.get("version", 0) > VERSION:
        raise UserError(f"{p}: checkpoint version {header['version']} is newer than this prune-lut ({VERSION}); upgrade")
    space = ChannelSpace.from_description(header["space"])
    if space.hash != header["space_hash"]:
        raise UserError(f"{p}: its space hash {header['space_hash']} does not match its own description "
                        f"({space.hash}); the file was edited or made by another prune-lut version")
    ck = Checkpoint(p, header, space, state)
    if header["kind"] == "pruningnet":
        ck.pruningnet = PruningNet(space, hidden=header["config"]["hidden"])
        ck.pruningnet.load_state_dict(state["model"])
        ck.pruningnet.eval()
    else:
        ck.net = build_net(space, header["arch"])
        ck.net.load_state_dict(state["model"])
        ck.net.eval()
    return ck


# ---- arch sampling -----------------------------------------------------------------------
RULES = ("sandwich", "alternate", "random")


class ArchSampler:
    """The coding vectors training step ``s`` trains, a function of (seed, s) alone, so every process
    and every resumed run draws the same ones. Optional MACs or LUT-latency ranges are enforced by
    rejection, and the widest and smallest archs are then the widest and narrowest uniform-width
    archs inside the range.

    ``rule``:
      ``random``     one random coding vector per step (MetaPruning's rule);
      ``alternate``  the widest arch on even steps, a random one on odd steps;
      ``sandwich``   the widest, the smallest and ``random_archs`` random ones on every step, their
                     gradients accumulated before one update (the sandwich rule of Yu & Huang 2019).
    Measured A/B in docs/BENCHMARKS.md ("PruningNet training rules").
    """

    MAX_TRIES = 2000

    def __init__(self, space: ChannelSpace, seed: int, macs_range: tuple[float, float] | None = None,
                 latency_range: tuple[float, float] | None = None, lut: str | None = None,
                 rule: str = "sandwich", random_archs: int = 2):
        if rule not in RULES:
            raise UserError(f"unknown training rule {rule!r}; choose one of {', '.join(RULES)}")
        if random_archs < (0 if rule == "sandwich" else 1) or random_archs > 16:
            raise UserError(f"random archs per step must lie in 0..16 (sandwich) or 1..16, got {random_archs}")
        self.space, self.seed, self.rule, self.random_archs = space, seed, rule, random_archs
        self.macs_range, self.latency_range, self.lut = macs_range, latency_range, lut
        self._predict: Callable[[dict], float] | None = None
        if latency_range is not None:
            if lut is None:
                raise UserError("--latency-range needs --lut FILE (the device's lookup table)")
            from ..latency.lutfile import LUT
            from ..latency.predictor import Predictor

            pred = Predictor(LUT.load(lut, space_hash=space.hash))
            self._predict = lambda a: pred.predict_ms(space.layer_specs(a))
        for name, rng, f in (("MACs", macs_range, space.macs), ("latency", latency_range, self._predict)):
            if rng is None:
                continue
            lo, hi = rng
            ends = sorted((f(space.smallest()), f(space.full())))
            if lo > hi or hi < ends[0] or lo > ends[1]:
                raise UserError(f"{name} range {lo:g}:{hi:g} misses the space ({ends[0]:g} .. {ends[1]:g}); "
                                "choose a range inside it")
        self.widest = self._uniform_inside(range(100, 0, -1))
        self.smallest = self._uniform_inside(range(1, 101))

    def _uniform_inside(self, percents) -> dict[str, int]:
        """The first uniform-width arch (ratios in ``percents`` order) inside the range, else a random one."""
        for k in percents:
            arch = self.space.uniform(k / 100)
            if self.ok(arch):
                return arch
        return self.random(-1)

    def ok(self, arch: dict[str, int]) -> bool:
        if self.macs_range and not self.macs_range[0] <= self.space.macs(arch) <= self.macs_range[1]:
            return False
        return not (self.latency_range and not self.latency_range[0] <= self._predict(arch) <= self.latency_range[1])

    def random(self, step: int, j: int = 0) -> dict[str, int]:
        """The ``j``-th random coding vector of step ``step`` (uniform on the grid, inside the range)."""
        rng = random.Random(f"{self.seed}:{step}" if j == 0 else f"{self.seed}:{step}:{j}")
        for _ in range(self.MAX_TRIES):
            arch = self.space.random(rng)
            if self.ok(arch):
                return arch
        raise UserError(f"no arch inside the requested range after {self.MAX_TRIES} random draws; widen the range")

    def step_archs(self, step: int) -> list[dict[str, int]]:
        """The archs step ``step`` trains, in order (with ``sandwich`` the widest first: the teacher)."""
        if self.rule == "random":
            return [self.random(step)]
        if self.rule == "alternate":
            return [dict(self.widest)] if step % 2 == 0 else [self.random(step)]
        return [dict(self.widest), dict(self.smallest)] + [self.random(step, j) for j in range(self.random_archs)]

    def describe(self) -> dict:
        return {"rule": self.rule, "random_archs": self.random_archs if self.rule == "sandwich" else None,
                "macs_range": list(self.macs_range) if self.macs_range else None,
                "latency_range": list(self.latency_range) if self.latency_range else None,
                "lut": str(self.lut) if self.lut else None}

    @staticmethod
    def rule_of(described: dict) -> tuple[str, int]:
        """(rule, random archs) of a checkpoint's sampler record; before rules existed it held ``sandwich``."""
        if "rule" in described:
            return described["rule"], described.get("random_archs") or 2
        return ("alternate" if described.get("sandwich") else "random"), 2


# ---- evaluation --------------------------------------------------------------------------
@torch.no_grad()
def evaluate(net: nn.Module, loader, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of ``net`` in eval mode over ``loader`` (batches of (x, y), or a Dataset)."""
    if isinstance(loader, torch.utils.data.Dataset):
        loader = batches(loader, batch_size)
    net.eval()
    device = next(net.parameters()).device
    correct = total = 0
    for x, y in loader:
        pred = net(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
        total += len(y)
    return correct / max(total, 1)


def arch_accuracy(pruningnet: PruningNet, arch: dict[str, int], data: DataSplits, recal_batches: int = RECAL_BATCHES,
                  batch_size: int = 128, split: str = "val", seed: int = 0) -> float:
    """Accuracy of the PruningNet's network for ``arch`` on ``split`` after BatchNorm recalibration."""
    net = pruningnet.generate(arch)
    bs = min(batch_size, len(data.train))
    recalibrate_bn(net, cycle_batches(data.train, bs, seed), recal_batches)
    return evaluate(net, getattr(data, split))


# ---- the shared loop ---------------------------------------------------------------------
@dataclass
class TrainResult:
    path: Path
    header: dict
    history: list = field(default_factory=list)
    test_acc: float | None = None


def _cosine(lr: float, step: int, total: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def make_sgd(groups: list[dict], lr: float, momentum: float) -> torch.optim.SGD:
    """SGD with the fused kernel where the parameters allow it: one pass over each tensor instead of
    several. For the PruningNet's 73 M parameters the update took 0.023 s instead of 0.116 s (2-core VM),
    the difference between 1.4x and 2.0x a plain network's step on digits."""
    try:
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype the fused kernel does not cover
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def _resolve(out: Path, resume: bool, kind: str, space: ChannelSpace, data: DataSplits, given: dict,
             arch: dict | None) -> tuple[dict, Checkpoint | None]:
    """Options for this run: the given ones over the defaults, or over the checkpoint's when resuming."""
    if not out.exists():
        if resume:
            log.info("%s does not exist yet: starting from scratch", out)
        return {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}, None
    if not resume:
        raise UserError(f"{out} already exists; pass --resume to continue it, or choose another --out")
    ck = load_checkpoint(out)
    if ck.kind != kind:
        raise UserError(f"{out} is a {ck.kind} checkpoint, not a {kind} one; choose another --out")
    if ck.space.hash != space.hash:
        d = ck.space.describe()
        raise UserError(f"{out} was trained for {d['family']} (resolution {d['resolution']}, multiple {d['multiple']}, "
                        f"space {ck.space.hash}), not for {space.family} (resolution {space.resolution}, multiple "
                        f"{space.multiple}, space {space.hash}); resume with the same options or choose another --out")
    if arch is not None and ck.arch != dict(arch):
        raise UserError(f"{out} trained another arch; choose another --out")
    if ck.data_spec != data.spec:
        raise UserError(f"{out} was trained on --data {ck.data_spec}, not {data.spec}; resume with the same data")
    if ck.split["val"] != list(data.split["val"]) or ck.split["train"] != list(data.split["train"]):
        raise UserError(f"{out}: the data split differs from the checkpoint's; load the data with its saved split")
    cfg = dict(ck.header["config"])
    for k, v in given.items():
        if v is None or v == cfg.get(k):
            continue
        if k in ("epochs", "lr"):
            log.warning("resume: %s changed from %s to %s (the run is no longer an exact continuation)", k, cfg[k], v)
            cfg[k] = v
        else:
            raise UserError(f"{out} was trained with {k.replace('_', '-')} {cfg.get(k)}, not {v}; "
                            f"drop that option to resume, or choose another --out")
    return cfg, ck


@dataclass
class Loss:
    """A step's loss over one or several forwards of the same batch: cross-entropy with label
    smoothing on the labels, or (in-place distillation) on the ``teacher``'s probabilities for every
    forward after the first; summed over the forwards (their gradients accumulate, one update) and
    scaled to the mean over the global batch; backward at once. Returns (loss sum, correct, count)
    per forward, for the step's statistics."""

    label_smoothing: float
    scale: float

    def backward(self, logits: torch.Tensor | list[torch.Tensor], y: torch.Tensor,
                 teacher: torch.Tensor | None = None) -> torch.Tensor:
        outs = logits if isinstance(logits, list) else [logits]
        total, correct = 0.0, 0.0
        for i, z in enumerate(outs):
            if teacher is None or i == 0:
                total = total + F.cross_entropy(z, y, label_smoothing=self.label_smoothing, reduction="sum")
            else:
                total = total - (teacher * F.log_softmax(z, 1)).sum()
            correct += float((z.argmax(1) == y).sum())
        (total * self.scale).backward()
        n = len(outs)
        return torch.tensor([float(total.detach()) / n, correct / n, float(len(y))], dtype=torch.float64)


def _fit(kind: str, model: nn.Module, space: ChannelSpace, data: DataSplits, out, resume: bool, given: dict,
         header_extra: dict, forward: Callable, validate: Callable[[nn.Module], dict], progress: bool,
         device: str, arch: dict | None = None, build_groups: Callable | None = None,
         stop_after: int | None = None) -> TrainResult:
    dist = setup(device)
    out = Path(out)
    cfg, ck = _resolve(out, resume, kind, space, data, given, arch)
    if len(data.train) < dist.world:
        raise UserError(f"{len(data.train)} training images cannot be shared by {dist.world} processes")
    bs = min(cfg["batch_size"], len(data.train))
    if bs < dist.world:
        raise UserError(f"--batch-size {cfg['batch_size']} is smaller than the {dist.world} processes sharing it")
    model.to(dist.device)
    groups = build_groups(model, cfg) if build_groups else [{"params": list(model.parameters()),
                                                             "weight_decay": cfg["weight_decay"]}]
    opt = make_sgd(groups, cfg["lr"], cfg["momentum"])
    history: list = []
    start = 0
    if ck is not None:
        model.load_state_dict(ck.state["model"])
        opt.load_state_dict(ck.state["optimizer"])
        torch.set_rng_state(ck.state["rng"])
        history, start = list(ck.header["history"]), ck.epoch
        log.info("resuming %s at epoch %d of %d", out, start + 1, cfg["epochs"])
    runner = model
    if dist.enabled:
        if isinstance(model, PruningNet):
            model.sync_bn = True
        runner = nn.parallel.DistributedDataParallel(
            model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None,
            broadcast_buffers=not isinstance(model, PruningNet))
    steps = num_batches(data.train, bs, drop_last=True)
    total = cfg["epochs"] * steps
    header = {"format": FORMAT, "version": VERSION, "kind": kind, "space": space.describe(), "space_hash": space.hash,
              "data_spec": data.spec, "data": data.describe(), "config": cfg, "steps_per_epoch": steps,
              "world": dist.world, "torch": torch.__version__, **header_extra}
    log_path = out.with_name(out.name + ".log")
    last = cfg["epochs"] if stop_after is None else min(cfg["epochs"], start + stop_after)
    for epoch in range(start, last):
        t0 = time.perf_counter()
        model.train()
        order = epoch_order(len(data.train), cfg["seed"], epoch)
        digest = hashlib.sha256()
        tot = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count (all processes)
        bar = tqdm(total=steps, desc=f"{kind} epoch {epoch + 1}/{cfg['epochs']}", unit="step", leave=False,
                   disable=not (progress and dist.main))
        for i, (x, y) in enumerate(batches(data.train, bs, order, drop_last=True)):
            step = epoch * steps + i
            for g in opt.param_groups:
                g["lr"] = _cosine(cfg["lr"], step, total)
            xs, ys = x.tensor_split(dist.world)[dist.rank], y.tensor_split(dist.world)[dist.rank]
            xs, ys = xs.to(dist.device, non_blocking=True), ys.to(dist.device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            # DDP averages over processes: dist.world / len(y) makes each loss the mean over the global batch
            stats, tag = forward(runner, xs, ys, step, Loss(cfg["label_smoothing"], dist.world / len(y)))
            digest.update(tag.encode())
            stats = dist.mean(stats) * dist.world
            if not torch.isfinite(stats[0]):
                bar.close()
                raise UserError(f"loss became {stats[0].item()} at epoch {epoch + 1}, step {i + 1}; lower --lr "
                                f"(now {cfg['lr']:g}) and --resume: the last good checkpoint {out} is untouched"
                                if out.exists() else
                                f"loss became {stats[0].item()} at epoch {epoch + 1}, step {i + 1}; lower --lr "
                                f"(now {cfg['lr']:g}); no checkpoint was written")
            opt.step()
            tot += stats
            bar.update()
            bar.set_postfix(loss=f"{tot[0] / tot[2]:.3f}", acc=f"{tot[1] / tot[2]:.3f}")
        bar.close()
        ranks = dist.all_equal(digest.hexdigest()[:16])
        if len(set(ranks)) != 1:
            raise RuntimeError(f"processes trained different coding vectors: {ranks}")
        rec = {"epoch": epoch + 1, "loss": float(tot[0] / tot[2]), "train_acc": float(tot[1] / tot[2]),
               "lr_end": opt.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 3),
               "archs_digest": ranks[0], "rank_digests": ranks}
        if dist.main:
            rec.update(validate(model))
            history.append(rec)
            save_checkpoint(out, {**header, "epoch": epoch + 1, "history": history}, model, opt, data.split)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            msg = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rec.items()
                            if k not in ("rank_digests", "archs_digest"))
            if progress and not log.isEnabledFor(logging.INFO):
                tqdm.write(msg)
            else:
                log.info("%s", msg)
        else:
            history.append(rec)
        dist.barrier()
    header = {**header, "epoch": last, "history": history}
    return TrainResult(out, header, history)


# ---- public entry points -----------------------------------------------------------------
def data_for(out: str | os.PathLike, resume: bool, spec: str, resolution: int | None = None,
             val_per_class: int | None = None, seed: int | None = None,
             train_per_class: int | None = None) -> DataSplits:
    """The data for a run writing ``out``: with ``resume`` and an existing checkpoint, its saved split."""
    p = Path(out)
    if resume and p.exists():
        ck = load_checkpoint(p)
        if ck.data_spec != spec:
            raise UserError(f"{p} was trained on --data {ck.data_spec}, not {spec}; resume with the same data")
        return load_data(spec, resolution=resolution or ck.space.resolution, split=ck.split)
    return load_data(spec, resolution=resolution, val_per_class=val_per_class,
                     seed=DEFAULTS["seed"] if seed is None else seed, train_per_class=train_per_class)


def check_space_data(space: ChannelSpace, data: DataSplits) -> None:
    """Refuse a space whose input does not match the data (channels, classes, resolution)."""
    for name, s, d in (("resolution", space.resolution, data.resolution), ("in_channels", space.in_channels,
                       data.in_channels), ("num_classes", space.num_classes, data.num_classes)):
        if s != d:
            raise UserError(f"the space has {name} {s} but --data {data.spec} gives {d}; build the space from the data")


def train_pruningnet(space: ChannelSpace, data: DataSplits, epochs: int | None = None, batch_size: int | None = None,
                     lr: float | None = None, seed: int | None = None, out: str | os.PathLike = "pruningnet.pt",
                     resume: bool = False, hidden: int | None = None, weight_decay: float | None = None,
                     macs_range: tuple[float, float] | None = None,
                     latency_range: tuple[float, float] | None = None, lut: str | None = None,
                     progress: bool = True, device: str = "auto", validate_archs: str = "full",
                     stop_after: int | None = None, rule: str | None = None, random_archs: int | None = None,
                     distill: bool | None = None) -> TrainResult:
    """Meta-train a PruningNet on ``data``, checkpointing to ``out``.

    Options left None take the defaults (:data:`DEFAULTS`, :data:`TRAINING_RULE`), or the
    checkpoint's values on resume. ``rule`` and ``random_archs`` choose the archs of each step
    (:class:`ArchSampler`); ``distill`` (sandwich rule only) trains every arch but the widest on the
    widest's soft predictions for the same batch (in-place distillation) instead of the labels.
    After each epoch the generated full-width network (``validate_archs="full"``; also the smallest
    with ``"full+smallest"``; none with ``"none"``) is scored on the sub-validation split after
    BatchNorm recalibration. ``stop_after`` ends this call after that many epochs (the schedule
    still spans ``epochs``; ``resume`` continues it).
    """
    check_space_data(space, data)
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "hidden": hidden,
             "weight_decay": weight_decay}
    cfg_seed = DEFAULTS["seed"] if seed is None else seed
    wanted_rule = {"rule": rule, "random_archs": random_archs, "distill": distill}
    rule_cfg = {**TRAINING_RULE, **{k: v for k, v in wanted_rule.items() if v is not None}}
    if distill is None and rule_cfg["rule"] != "sandwich":
        rule_cfg["distill"] = False  # no teacher in the step
    # options fixed by the checkpoint must be known before the model is built
    p = Path(out)
    if resume and p.exists():
        header = load_checkpoint(p).header  # one read of a file of hundreds of MB
        prev, prev_sampler = header["config"], header.get("sampler", {})
        cfg_seed = prev["seed"] if seed is None else seed
        hidden = prev["hidden"] if hidden is None else hidden
        if macs_range is None and latency_range is None and prev_sampler:
            macs_range = tuple(prev_sampler["macs_range"]) if prev_sampler.get("macs_range") else None
            latency_range = tuple(prev_sampler["latency_range"]) if prev_sampler.get("latency_range") else None
            lut = prev_sampler.get("lut")
        was_rule, was_random = ArchSampler.rule_of(prev_sampler)
        was = {"rule": was_rule, "random_archs": was_random, "distill": bool(prev_sampler.get("distill", False))}
        for k, v in wanted_rule.items():
            if v is not None and v != was[k] and not (k == "random_archs" and was_rule != "sandwich"):
                raise UserError(f"{p} was trained with {k.replace('_', '-')} {was[k]}, not {v}; drop that "
                                "option to resume, or choose another --out")
        rule_cfg = was
    if rule_cfg["distill"] and rule_cfg["rule"] != "sandwich":
        raise UserError(f"in-place distillation needs the sandwich rule (the widest arch is the teacher of each "
                        f"step), not {rule_cfg['rule']!r}; drop --distill or use --rule sandwich")
    torch.manual_seed(cfg_seed)  # the PruningBlocks' initialization
    model = PruningNet(space, hidden=DEFAULTS["hidden"] if hidden is None else hidden)
    sampler = ArchSampler(space, cfg_seed, macs_range, latency_range, lut, rule=rule_cfg["rule"],
                          random_archs=rule_cfg["random_archs"])
    distill = rule_cfg["distill"]

    def forward(runner, x, y, step, loss: Loss):
        archs = sampler.step_archs(step)
        logits = runner(x, archs)  # one graph for the step's archs: the generator runs once for all
        teacher = F.softmax(logits[0].detach(), 1) if distill else None
        stats = loss.backward(logits, y, teacher)
        return stats, ";".join(",".join(map(str, space.vector(a))) for a in archs)

    named = {"full": space.full(), "smallest": space.smallest()}
    wanted = [] if validate_archs == "none" else validate_archs.split("+")

    def validate(m: PruningNet) -> dict:
        return {f"val_{n}": arch_accuracy(m, named[n], data, seed=cfg_seed) for n in wanted}

    res = _fit("pruningnet", model, space, data, out, resume, given,
               {"sampler": {**sampler.describe(), "distill": distill}}, forward, validate, progress, device,
               build_groups=lambda m, cfg: m.param_groups(cfg["weight_decay"]), stop_after=stop_after)
    return res


def init_from_pruningnet(ckpt: str | os.PathLike, space: ChannelSpace, arch: dict[str, int]) -> PrunedNet:
    """The plain network for ``arch`` with the weights the PruningNet in ``ckpt`` generates for it."""
    ck = load_checkpoint(ckpt)
    if ck.pruningnet is None:
        raise UserError(f"{ckpt} is a {ck.kind} checkpoint; --init pruningnet: needs a `prune-lut train` checkpoint")
    if ck.space.hash != space.hash:
        raise UserError(f"{ckpt} was trained for space {ck.space.hash} ({ck.space.family}), the arch is in space "
                        f"{space.hash} ({space.family}); use the checkpoint the arch was searched with")
    return ck.pruningnet.generate(arch)


def plain_param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv and linear weights only."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def train_plain(space: ChannelSpace, arch: dict[str, int], data: DataSplits, epochs: int | None = None,
                batch_size: int | None = None, lr: float | None = None, seed: int | None = None,
                out: str | os.PathLike = "retrain.pt", resume: bool = False, weight_decay: float | None = None,
                init: str | os.PathLike | None = None, progress: bool = True, device: str = "auto",
                holdout: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train the plain network of ``arch`` from scratch (or from ``init``, a PruningNet checkpoint's
    generated weights) and report its test accuracy at the end.

    As the paper retrains the winner, it learns on the whole training set (sub-train plus sub-val);
    ``holdout`` keeps the sub-validation split out and scores it after every epoch."""
    check_space_data(space, data)
    arch = space.validate(arch)
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "weight_decay": weight_decay}
    torch.manual_seed(DEFAULTS["seed"] if seed is None else seed)
    if resume and Path(out).exists():
        torch.manual_seed(load_checkpoint(out).header["config"]["seed"] if seed is None else seed)
    model = init_from_pruningnet(init, space, arch) if init else build_net(space, arch)

    def forward(runner, x, y, step, loss: Loss):
        return loss.backward(runner(x), y), "plain"

    def validate(m: nn.Module) -> dict:
        return {"val_acc": evaluate(m, data.val)} if holdout else {}

    res = _fit("plain", model, space, data if holdout else with_val_in_train(data), out, resume, given,
               {"arch": dict(arch), "init": str(init) if init else None, "holdout": holdout}, forward, validate,
               progress, device,
               arch=arch, build_groups=lambda m, cfg: plain_param_groups(m, cfg["weight_decay"]), stop_after=stop_after)
    res.test_acc = evaluate(model, data.test)
    res.header["test_acc"] = res.test_acc
    return res


# ---- helpers for the command line --------------------------------------------------------
def parse_range(text: str | None, option: str, scale: float = 1.0) -> tuple[float, float] | None:
    """``"LO:HI"`` -> (LO*scale, HI*scale), or UserError naming the option."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) * scale for v in text.split(":"))
    except ValueError:
        raise UserError(f"{option} expects LO:HI (two numbers), got {text!r}") from None
    if not 0 <= lo <= hi:
        raise UserError(f"{option} {text}: need 0 <= LO <= HI")
    return lo, hi


def space_for_data(family: str, data: DataSplits, small_input: bool | None = None, multiple: int = 1) -> ChannelSpace:
    """The family's space shaped by the data: its resolution, channels and classes; the small-input
    stem (total stride 8) below 64 pixels unless told otherwise."""
    from .space import get_space

    if small_input is None:
        small_input = data.resolution < 64
    return get_space(family, resolution=data.resolution, num_classes=data.num_classes, in_channels=data.in_channels,
                     small_input=small_input, multiple=multiple)
