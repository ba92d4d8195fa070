"""The two training runs: PruningNet meta-training (``prune-lut train``) and plain retraining (``retrain``)."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import UserError
from ..data import DataSplits, load_data, with_val_in_train
from ..net import PrunedNet, build_net
from ..pruningnet import PruningNet
from ..scoring import GeneratedNets, evaluate
from ..space import ChannelSpace, get_space
from .checkpoint import Checkpoint, load_checkpoint
from .loop import DEFAULTS, Recipe, TrainResult, fit, resolve_options
from .sampler import TEACHER_RULES, ArchSampler

# The archs each PruningNet step trains (ArchSampler) and whether the pruned ones learn from the
# widest's predictions: chosen A/B in docs/BENCHMARKS.md ("PruningNet training rules", and the
# strong-budget benchmark, where the sandwich's fixed smallest arch misled the search).
TRAINING_RULE = {"rule": "widest", "random_archs": None, "distill": False, "draws": "level"}
VAL_RECAL_BATCHES = 20  # BatchNorm recalibration batches before each epoch's validation of a generated network


def resume_checkpoint(out: str | os.PathLike, resume: bool) -> Checkpoint | None:
    """The checkpoint at ``out`` when resuming it (loaded once per command), else None; an existing
    ``out`` without ``resume`` is refused."""
    p = Path(out)
    if not p.exists():
        return None
    if not resume:
        raise UserError(f"{p} already exists; pass --resume to continue it, or choose another --out")
    return load_checkpoint(p)


def data_for(spec: str, checkpoint: Checkpoint | None = None, resolution: int | None = None,
             val_per_class: int | None = None, seed: int | None = None,
             train_per_class: int | None = None) -> DataSplits:
    """The data of a run: a resumed ``checkpoint``'s saved split, else a new split of ``spec``."""
    if checkpoint is not None:
        if checkpoint.data_spec != spec:
            raise UserError(f"{checkpoint.path} was trained on --data {checkpoint.data_spec}, not {spec}; "
                            "resume with the same data")
        return load_data(spec, resolution=resolution or checkpoint.space.resolution, split=checkpoint.split)
    return load_data(spec, resolution=resolution, val_per_class=val_per_class,
                     seed=DEFAULTS["seed"] if seed is None else seed, train_per_class=train_per_class)


def check_space_data(space: ChannelSpace, data: DataSplits) -> None:
    """Refuse a space whose input does not match the data (channels, classes, resolution)."""
    for name, s, d in (("resolution", space.resolution, data.resolution), ("in_channels", space.in_channels,
                       data.in_channels), ("num_classes", space.num_classes, data.num_classes)):
        if s != d:
            raise UserError(f"the space has {name} {s} but --data {data.spec} gives {d}; build the space from the data")


def space_for_data(family: str, data: DataSplits, small_input: bool | None = None, multiple: int = 1) -> ChannelSpace:
    """The family's space shaped by the data: its resolution, channels and classes; the small-input
    stem (total stride 8) below 64 pixels unless told otherwise."""
    if small_input is None:
        small_input = data.resolution < 64
    return get_space(family, resolution=data.resolution, num_classes=data.num_classes, in_channels=data.in_channels,
                     small_input=small_input, multiple=multiple)


def _rule(given: dict, ck: Checkpoint | None) -> dict:
    """The training rule of a run: the given fields over :data:`TRAINING_RULE`, or a resumed checkpoint's
    (refused where a given field differs)."""
    if ck is None:
        cfg = {**TRAINING_RULE, **{k: v for k, v in given.items() if v is not None}}
        if given["distill"] is None and cfg["rule"] not in TEACHER_RULES:
            cfg["distill"] = False  # no teacher in the step
    else:
        sampler = ck.header.get("sampler", {})
        rule, random_archs = ArchSampler.rule_of(sampler)
        cfg = {"rule": rule, "random_archs": random_archs, "distill": bool(sampler.get("distill", False)),
               "draws": sampler.get("draws", "uniform")}
        for k, v in given.items():
            if v is not None and v != cfg[k] and not (k == "random_archs" and rule not in TEACHER_RULES):
                raise UserError(f"{ck.path} was trained with {k.replace('_', '-')} {cfg[k]}, not {v}; drop that "
                                "option to resume, or choose another --out")
    if cfg["distill"] and cfg["rule"] not in TEACHER_RULES:
        raise UserError(f"in-place distillation needs the sandwich or widest rule (the widest arch is the teacher "
                        f"of each step), not {cfg['rule']!r}; drop --distill or use --rule sandwich")
    return cfg


def train_pruningnet(space: ChannelSpace, data: DataSplits, epochs: int | None = None, batch_size: int | None = None,
                     lr: float | None = None, seed: int | None = None, out: str | os.PathLike = "pruningnet.pt",
                     resume: bool = False, hidden: int | None = None, weight_decay: float | None = None,
                     macs_range: tuple[float, float] | None = None,
                     latency_range: tuple[float, float] | None = None, lut: str | None = None,
                     progress: bool = True, device: str = "auto", score_archs: str = "full",
                     stop_after: int | None = None, rule: str | None = None, random_archs: int | None = None,
                     distill: bool | None = None, bn: str | None = None, draws: str | None = None,
                     checkpoint: Checkpoint | None = None) -> TrainResult:
    """Meta-train a PruningNet on ``data``, checkpointing to ``out``.

    Options left None take the defaults (:data:`~.loop.DEFAULTS`, :data:`TRAINING_RULE`), or the
    checkpoint's values on resume (``checkpoint``: the checkpoint at ``out`` when the caller loaded it
    already). ``rule`` and ``random_archs`` choose the archs of each step (:class:`ArchSampler`);
    ``distill`` (sandwich and widest rules only) trains every arch but the widest on the widest's soft
    predictions for the same batch (in-place distillation) instead of the labels; ``bn`` chooses
    BatchNorm per output width or shared (:class:`~prune_lut.pruning.pruningnet.PruningNet`). After each epoch
    the generated full-width network (``score_archs="full"``; also the smallest with
    ``"full+smallest"``; none with ``"none"``) is scored on the sub-validation split after BatchNorm
    recalibration. ``stop_after`` ends this call after that many epochs (``resume`` continues it).
    """
    check_space_data(space, data)
    ck = checkpoint if checkpoint is not None else (resume_checkpoint(out, resume) if resume else None)
    if ck is None and Path(out).exists():
        resume_checkpoint(out, False)  # refuses an existing --out
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "hidden": hidden,
             "weight_decay": weight_decay, "bn": bn}
    cfg = resolve_options(Path(out), "pruningnet", space, data, given, ck)
    rule_cfg = _rule({"rule": rule, "random_archs": random_archs, "distill": distill, "draws": draws}, ck)
    if ck is not None:
        sampler_was = ck.header.get("sampler", {})
        if macs_range is None and latency_range is None:
            macs_range = tuple(sampler_was["macs_range"]) if sampler_was.get("macs_range") else None
            latency_range = tuple(sampler_was["latency_range"]) if sampler_was.get("latency_range") else None
            lut = sampler_was.get("lut")
        model = ck.module()
    else:
        torch.manual_seed(cfg["seed"])  # the PruningBlocks' initialization
        model = PruningNet(space, hidden=cfg["hidden"], bn=cfg["bn"])  # DEFAULTS hold bn
    sampler = ArchSampler(space, cfg["seed"], macs_range, latency_range, lut, rule=rule_cfg["rule"],
                          random_archs=rule_cfg["random_archs"], draws=rule_cfg["draws"])
    distill = rule_cfg["distill"]

    def step(runner, x, y, s, loss):
        archs = sampler.step_archs(s)
        logits = runner(x, archs)  # one graph for the step's archs: the generator runs once for all
        teacher = F.softmax(logits[0].detach(), 1) if distill else None
        return loss.backward(logits, y, teacher), ";".join(",".join(map(str, space.vector(a))) for a in archs)

    named = {"full": space.full(), "smallest": space.smallest()}
    wanted = [] if score_archs == "none" else score_archs.split("+")

    def score(m: PruningNet) -> dict:
        nets = GeneratedNets(m, data, recal_batches=VAL_RECAL_BATCHES, seed=cfg["seed"])
        return {f"val_{n}": nets.accuracy(named[n]) for n in wanted}

    recipe = Recipe("pruningnet", model, step, score, lambda m, wd: m.param_groups(wd),
                    header={"sampler": {**sampler.describe(), "distill": distill}})
    return fit(recipe, space, data, out, cfg, ck, progress, device, stop_after)


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
                holdout: bool = False, stop_after: int | None = None,
                checkpoint: Checkpoint | None = None) -> TrainResult:
    """Train the plain network of ``arch`` from scratch (or from ``init``, a PruningNet checkpoint's
    generated weights) and report its test accuracy at the end.

    As the paper retrains the winner, it learns on the whole training set (sub-train plus sub-val);
    ``holdout`` keeps the sub-validation split out and scores it after every epoch."""
    check_space_data(space, data)
    arch = space.check_arch(arch)
    ck = checkpoint if checkpoint is not None else (resume_checkpoint(out, resume) if resume else None)
    if ck is None and Path(out).exists():
        resume_checkpoint(out, False)
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "weight_decay": weight_decay}
    train_data = data if holdout else with_val_in_train(data)
    cfg = resolve_options(Path(out), "plain", space, train_data, given, ck, arch)
    if ck is not None:
        if init is not None and ck.header.get("init") != str(init):
            started = ck.header.get("init") or "scratch"
            raise UserError(f"{out} started from {started}, not from {init}; resume it without --init, "
                            "or choose another --out")
        model = ck.module()
    else:
        torch.manual_seed(cfg["seed"])
        model = init_from_pruningnet(init, space, arch) if init else build_net(space, arch)

    def step(runner, x, y, s, loss):
        return loss.backward(runner(x), y), "plain"

    def score(m: nn.Module) -> dict:
        return {"val_acc": evaluate(m, data.val)} if holdout else {}

    recipe = Recipe("plain", model, step, score, plain_param_groups, arch=arch,
                    header={"arch": dict(arch), "init": str(init) if init else None, "holdout": holdout})
    res = fit(recipe, space, train_data, out, cfg, ck, progress, device, stop_after)
    res.test_acc = evaluate(model, data.test)
    res.header["test_acc"] = res.test_acc
    return res
