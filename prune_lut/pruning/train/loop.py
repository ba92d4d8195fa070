"""The training loop PruningNet meta-training and plain retraining share.

SGD with momentum (PyTorch's fused kernel where it applies), label smoothing, a per-step cosine
learning-rate schedule, weight decay on weights only, an atomic checkpoint after every epoch, and
an exact resume: the data order of epoch *e* and the coding vectors of step *s* are functions of
(seed, e) and (seed, s) alone, so a resumed run replays what the uninterrupted run would have done.
Under torchrun every process draws the same coding vectors and takes its share of each global
batch; the PruningNet's BatchNorm statistics are summed over processes, so N processes train what
one process would.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ...errors import UserError
from ..data import DataSplits, batches, epoch_order, num_batches
from ..distributed import setup
from ..pruningnet import PruningNet
from ..space import ChannelSpace
from .checkpoint import FORMAT, VERSION, Checkpoint, save_checkpoint

log = logging.getLogger(__name__)

DEFAULTS = {"epochs": 10, "batch_size": 128, "lr": 0.05, "seed": 0, "weight_decay": 5e-4, "hidden": 32, "bn": "choice",
            "momentum": 0.9, "label_smoothing": 0.1}


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


@dataclass
class Recipe:
    """One kind of training run, as the loop sees it.

    ``step(runner, x, y, step_index, loss)`` runs the forward(s) and backward of one batch and returns
    (statistics from ``Loss.backward``, a tag naming what it trained: digested per epoch so that the
    processes of a torchrun job are checked to train the same archs); ``score(model)`` gives the
    figures each epoch appends to the history; ``param_groups(model, weight_decay)`` the optimizer's
    groups; ``header`` the kind's own header fields; ``arch`` the plain arch a resume must match.
    """

    kind: str
    model: nn.Module
    step: Callable
    score: Callable[[nn.Module], dict]
    param_groups: Callable[[nn.Module, float], list[dict]]
    header: dict = field(default_factory=dict)
    arch: dict | None = None


@dataclass
class TrainResult:
    path: Path
    header: dict
    history: list = field(default_factory=list)
    test_acc: float | None = None
    model: nn.Module | None = field(default=None, repr=False)  # the trained module (saved at ``path``)


def _cosine(lr: float, step: int, total: int) -> float:
    return 0.5 * lr * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


def make_sgd(groups: list[dict], lr: float, momentum: float) -> torch.optim.SGD:
    """SGD with the fused kernel where the parameters allow it: one pass over each tensor instead of
    several (for the PruningNet's 73 M parameters 0.023 s instead of 0.116 s an update, docs/BENCHMARKS.md)."""
    try:
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype the fused kernel does not cover
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)


def resolve_options(out: Path, kind: str, space: ChannelSpace, data: DataSplits, given: dict,
                    ck: Checkpoint | None, arch: dict | None = None) -> dict:
    """Options for this run: the given ones over the defaults, or over the checkpoint's when resuming
    ``ck`` (the checkpoint at ``out``), refused where the checkpoint trained something else."""
    if ck is None:
        return {**DEFAULTS, **{k: v for k, v in given.items() if v is not None}}
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
    cfg = {**DEFAULTS, **ck.header["config"]}  # fields a checkpoint may lack (the schema's defaults) as DEFAULTS
    for k, v in given.items():
        if v is None or v == cfg.get(k):
            continue
        if k in ("epochs", "lr"):
            log.warning("resume: %s changed from %s to %s (the run is no longer an exact continuation)", k, cfg[k], v)
            cfg[k] = v
        else:
            raise UserError(f"{out} was trained with {k.replace('_', '-')} {cfg.get(k)}, not {v}; "
                            f"drop that option to resume, or choose another --out")
    return cfg


def fit(recipe: Recipe, space: ChannelSpace, data: DataSplits, out: str | Path, cfg: dict, ck: Checkpoint | None,
        progress: bool = True, device: str = "auto", stop_after: int | None = None) -> TrainResult:
    """Train ``recipe.model`` on ``data`` with the options ``cfg`` (:func:`resolve_options`), continuing
    ``ck`` when given; checkpoint to ``out`` after every epoch. ``stop_after`` ends this call after that
    many epochs (the schedule still spans ``cfg["epochs"]``)."""
    dist = setup(device)
    out = Path(out)
    model = recipe.model
    if len(data.train) < dist.world:
        raise UserError(f"{len(data.train)} training images cannot be shared by {dist.world} processes")
    bs = min(cfg["batch_size"], len(data.train))
    if bs < dist.world:
        raise UserError(f"--batch-size {cfg['batch_size']} is smaller than the {dist.world} processes sharing it")
    model.to(dist.device)
    opt = make_sgd(recipe.param_groups(model, cfg["weight_decay"]), cfg["lr"], cfg["momentum"])
    history: list = []
    start = 0
    if ck is not None:
        if ck.module() is not model:
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
    header = {"format": FORMAT, "version": VERSION, "kind": recipe.kind, "space": space.describe(),
              "space_hash": space.hash, "data_spec": data.spec, "data": data.describe(), "config": cfg,
              "steps_per_epoch": steps, "world": dist.world, "torch": torch.__version__, **recipe.header}
    log_path = out.with_name(out.name + ".log")
    last = cfg["epochs"] if stop_after is None else min(cfg["epochs"], start + stop_after)
    for epoch in range(start, last):
        t0 = time.perf_counter()
        model.train()
        order = epoch_order(len(data.train), cfg["seed"], epoch)
        digest = hashlib.sha256()
        tot = torch.zeros(3, dtype=torch.float64)  # loss sum, correct, count (all processes)
        bar = tqdm(total=steps, desc=f"{recipe.kind} epoch {epoch + 1}/{cfg['epochs']}", unit="step", leave=False,
                   disable=None if progress and dist.main else True)  # None: no bar where stderr is no terminal
        for i, (x, y) in enumerate(batches(data.train, bs, order, drop_last=True)):
            step = epoch * steps + i
            for g in opt.param_groups:
                g["lr"] = _cosine(cfg["lr"], step, total)
            xs, ys = x.tensor_split(dist.world)[dist.rank], y.tensor_split(dist.world)[dist.rank]
            xs, ys = xs.to(dist.device, non_blocking=True), ys.to(dist.device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            # DDP averages over processes: dist.world / len(y) makes each loss the mean over the global batch
            stats, tag = recipe.step(runner, xs, ys, step, Loss(cfg["label_smoothing"], dist.world / len(y)))
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
            rec.update(recipe.score(model))
            history.append(rec)
            save_checkpoint(out, {**header, "epoch": epoch + 1, "history": history}, model, opt, data.split)
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
            msg = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rec.items()
                            if k not in ("rank_digests", "archs_digest"))
            if progress and not log.isEnabledFor(logging.INFO):
                tqdm.write(msg, file=sys.stderr)  # progress, like the bar: stdout may carry --json
            else:
                log.info("%s", msg)
        else:
            history.append(rec)
        dist.barrier()
    header = {**header, "epoch": last, "history": history}
    return TrainResult(out, header, history, model=model)
