"""Training checkpoints: tensors and plain containers only, loaded with ``weights_only=True``.

``torch.save`` of ``{"header": JSON text, "model": state dict, "optimizer": state dict,
"split": {"train": int tensor, "val": int tensor, ...}, "rng": torch RNG state}``. The header names
the kind (``pruningnet`` or ``plain``), the space (description and hash), the data spec, the
training options, the finished epoch count and the per-epoch history (``schemas.CheckpointHeader``);
the tensors beside it are checked by :func:`load_checkpoint` before anything uses them.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ... import schemas
from ...errors import UserError
from ...files import parse_json, write_atomic
from ..data import DataSplits, load_data
from ..net import PrunedNet, build_net
from ..pruningnet import PruningNet
from ..space import ChannelSpace

FORMAT, VERSION = "prune-lut-checkpoint", 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: header fields, the rebuilt space, the state, and (built on first use) the
    trained module."""

    path: Path
    header: dict
    space: ChannelSpace
    state: dict
    _module: nn.Module | None = field(default=None, repr=False)

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

    def module(self) -> nn.Module:
        """The trained PruningNet or plain network, in eval mode (built once)."""
        if self._module is None:
            cfg = self.header["config"]
            m = (PruningNet(self.space, hidden=cfg["hidden"], bn=cfg.get("bn", "choice")) if self.kind == "pruningnet"
                 else build_net(self.space, self.header["arch"]))
            try:
                m.load_state_dict(self.state["model"])
            except (RuntimeError, KeyError, TypeError, AttributeError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise UserError(f"{self.path}: damaged checkpoint: its weights do not fit its header ({first}); "
                                "train it again or fetch it again") from None
            self._module = m.eval()
        return self._module

    @property
    def pruningnet(self) -> PruningNet | None:
        return self.module() if self.kind == "pruningnet" else None

    @property
    def net(self) -> PrunedNet | None:
        return self.module() if self.kind == "plain" else None

    def load_data(self) -> DataSplits:
        """The checkpoint's data at its resolution, with the saved sub-train/sub-val split."""
        return load_data(self.data_spec, resolution=self.space.resolution, split=self.split)


def save_checkpoint(path: str | os.PathLike, header: dict, model: nn.Module, optimizer, split: dict) -> None:
    """Write a checkpoint atomically: the previous one survives any failure."""
    obj = {"header": json.dumps(header), "model": model.state_dict(),
           "optimizer": optimizer.state_dict() if optimizer is not None else {},
           "split": {"train": torch.tensor(split["train"], dtype=torch.int64),
                     "val": torch.tensor(split["val"], dtype=torch.int64),
                     **{k: v for k, v in split.items() if k not in ("train", "val")}},
           "rng": torch.get_rng_state()}
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def _header(state, p: Path) -> dict:
    """The checkpoint's JSON header, checked against ``schemas.CheckpointHeader``."""
    if not isinstance(state, dict) or not isinstance(state.get("header"), str):
        raise UserError(f"{p}: not a prune-lut checkpoint (no JSON header); is it the right file?")
    header = parse_json(state["header"], f"{p} (header)")
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = schemas.show(header.get("format") if isinstance(header, dict) else header)
        raise UserError(f"{p}: not a prune-lut checkpoint (format {found} found, {FORMAT!r} expected)")
    if isinstance(header.get("version"), int) and header["version"] > VERSION:
        raise UserError(f"{p}: checkpoint version {header['version']} is newer than this prune-lut ({VERSION}); upgrade")
    return schemas.validate(header, "checkpoint", f"{p} (header)")


def _tensor(v, ndim: int | None = None, dtype: torch.dtype | None = None) -> bool:
    return isinstance(v, torch.Tensor) and (ndim is None or v.ndim == ndim) and (dtype is None or v.dtype == dtype)


def _check_state(state: dict, p: Path) -> None:
    """The tensors beside the header: the ``model`` state dict, the ``split`` indices, the RNG state
    and the ``optimizer`` state dict's structure (the checks a resume relies on, so a damaged file is
    refused here in one line, not in the middle of training)."""
    def bad(field: str, expected: str) -> UserError:
        return UserError(f"{p}: {field}: expected {expected}; train it again or fetch it again")

    model = state.get("model")
    if not isinstance(model, dict) or not all(isinstance(k, str) and _tensor(v) for k, v in model.items()):
        raise bad("model", "a state dict of named tensors")
    split = state.get("split")
    if not isinstance(split, dict):
        raise bad("split", "the data split (train and val indices)")
    for k in ("train", "val"):
        v = split.get(k)
        if not _tensor(v, 1, torch.int64) or not v.numel() or int(v.min()) < 0:
            raise bad(f"split.{k}", "a non-empty 1-D int64 tensor of image indices >= 0")
    for k in ("val_per_class", "seed", "train_per_class"):
        if k in split and (isinstance(split[k], bool) or not isinstance(split[k], int)):
            raise bad(f"split.{k}", "an integer")
    try:
        torch.Generator().set_state(state.get("rng"))
    except (TypeError, RuntimeError, ValueError):
        raise bad("rng", "the state of torch's random generator (a uint8 tensor)") from None
    opt = state.get("optimizer")
    groups = opt.get("param_groups") if isinstance(opt, dict) else None
    if not isinstance(opt, dict) or not isinstance(opt.get("state"), dict) or not isinstance(groups, list) \
            or not all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups):
        raise bad("optimizer", "an SGD state dict (state, param_groups)")
    for i, g in enumerate(groups):
        for k in ("lr", "momentum", "weight_decay"):
            v = g.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise bad(f"optimizer.param_groups[{i}].{k}", f"a finite number >= 0, found {schemas.show(v)}")


def _check_optimizer(ck: Checkpoint) -> None:
    """The optimizer state holds one momentum buffer of the right shape per parameter, in the groups
    the training run builds (what ``loop.fit`` loads on resume)."""
    from .recipes import plain_param_groups

    model = ck.module()
    groups = model.param_groups(0.0) if ck.kind == "pruningnet" else plain_param_groups(model, 0.0)
    params = [p for g in groups for p in g["params"]]
    saved = ck.state["optimizer"]
    ids = [i for g in saved["param_groups"] for i in g["params"]]
    if [len(g["params"]) for g in saved["param_groups"]] != [len(g["params"]) for g in groups] \
            or ids != list(range(len(params))):
        raise UserError(f"{ck.path}: damaged checkpoint: its optimizer state does not fit its network "
                        f"({len(ids)} parameters in {len(saved['param_groups'])} groups, the network has "
                        f"{len(params)} in {len(groups)}); train it again or fetch it again")
    for i, st in saved["state"].items():
        buf = st.get("momentum_buffer") if isinstance(st, dict) else None
        if not isinstance(i, int) or not 0 <= i < len(params) or (buf is not None and (
                not _tensor(buf) or buf.shape != params[i].shape)):
            raise UserError(f"{ck.path}: damaged checkpoint: optimizer state {i!r} does not fit parameter "
                            f"{i!r} of its network; train it again or fetch it again")


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by ``train``/``retrain`` (weights only; no pickled code runs), checked
    whole: header, tensors, weights against the header's network, optimizer against the weights."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p} is a folder, not a checkpoint; give the file `prune-lut train --out` wrote")
    if not p.is_file():
        raise UserError(f"{p}: no such checkpoint; train one with `prune-lut train`")
    try:
        state = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means a damaged or foreign file
        raise UserError(f"{p}: not a readable prune-lut checkpoint ({type(e).__name__}); is it the right file?") from None
    header = _header(state, p)
    _check_state(state, p)
    try:
        space = ChannelSpace.from_description(header["space"])
    except UserError as e:
        raise UserError(f"{p} (header): space: {e}") from None
    if space.hash != header["space_hash"]:
        raise UserError(f"{p}: its space hash {header['space_hash']} does not match its own description "
                        f"({space.hash}); the file was edited or made by another prune-lut version")
    ck = Checkpoint(p, header, space, state)
    ck.module()  # a state dict that does not fit its header is refused at load, not later
    _check_optimizer(ck)
    return ck
