"""Arch JSON: a pruned network as portable data (the space's options plus one width per gene)."""
from __future__ import annotations

import os

from .. import schemas
from ..errors import UserError
from ..files import read_json, write_json
from .space import PAPER_GRID, ChannelSpace, get_space



def arch_to_dict(space: ChannelSpace, arch: dict[str, int]) -> dict:
    """The arch JSON object for ``arch`` in ``space`` (genes in the space's order)."""
    arch = space.check_arch(arch)
    return {**space.describe(), "genes": dict(arch)}


def arch_from_dict(d: dict, source: str = "arch") -> tuple[ChannelSpace, dict[str, int]]:
    """Rebuild (space, arch) from an arch JSON object (``schemas.Arch``), validating every gene."""
    schemas.validate(d, "arch", source)
    try:
        space = get_space(d["family"], resolution=d.get("resolution", 224), num_classes=d.get("num_classes", 1000),
                          in_channels=d.get("in_channels", 3), small_input=d.get("small_input", False),
                          grid=tuple(d.get("grid") or PAPER_GRID), multiple=d.get("multiple", 1),
                          rounding=d.get("rounding", "round"))
    except UserError as e:
        raise UserError(f"{source}: {e}") from None
    try:
        return space, space.check_arch(d["genes"])
    except UserError as e:
        raise UserError(f"{source}: {e}") from None


def save_arch(path: str | os.PathLike, space: ChannelSpace, arch: dict[str, int]) -> None:
    write_json(path, arch_to_dict(space, arch))


def load_arch(path: str | os.PathLike) -> tuple[ChannelSpace, dict[str, int]]:
    return arch_from_dict(read_json(path, what="arch JSON"), source=str(path))
