"""Training checkpoints: tensors and plain containers only, loaded with ``weights_only=True``.

``torch.save`` of ``{"header": JSON text, "model": state dict, "optimizer": state dict,
"split": {"train": int tensor, "val": int tensor, ...}, "rng": torch RNG state}``. The header names
the kind (``pruningnet`` or ``plain``), the space (description and hash), the data spec, the
training options, the finished epoch count and the per-epoch history.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ...errors import UserError
from ...files import write_atomic
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
    ck.module()  # a state dict that does not fit its header is refused at load, not later
    return ck
