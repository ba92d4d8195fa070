"""Arch JSON: a pruned network as portable data (the space's options plus one width per gene)."""
from __future__ import annotations

import os

from ..errors import UserError
from ..files import read_json, write_json
from .space import PAPER_GRID, ChannelSpace, get_space

SPACE_KEYS = ("family", "resolution", "num_classes", "in_channels", "small_input", "grid", "multiple", "rounding")


def arch_to_dict(space: ChannelSpace, arch: dict[str, int]) -> dict:
    """The arch JSON object for ``arch`` in ``space`` (genes in the space's order)."""
    arch = space.check_arch(arch)
    return {**space.describe(), "genes": dict(arch)}


def arch_from_dict(d: dict, source: str = "arch") -> tuple[ChannelSpace, dict[str, int]]:
    """Rebuild (space, arch) from an arch JSON object, validating every gene."""
    if not isinstance(d, dict):
        raise UserError(f"{source}: expected a JSON object with 'family' and 'genes'")
    for k in ("family", "genes"):
        if k not in d:
            raise UserError(f"{source}: missing field {k!r}; an arch JSON needs 'family' and 'genes'")
    unknown = set(d) - set(SPACE_KEYS) - {"genes"}
    if unknown:
        raise UserError(f"{source}: unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(SPACE_KEYS + ('genes',))}")
    try:
        space = get_space(d["family"], resolution=int(d.get("resolution", 224)),
                          num_classes=int(d.get("num_classes", 1000)), in_channels=int(d.get("in_channels", 3)),
                          small_input=bool(d.get("small_input", False)), grid=tuple(d.get("grid", PAPER_GRID)),
                          multiple=int(d.get("multiple", 1)), rounding=str(d.get("rounding", "round")))
    except (TypeError, ValueError) as e:
        raise UserError(f"{source}: bad space option ({e})") from e
    try:
        return space, space.check_arch(d["genes"])
    except UserError as e:
        raise UserError(f"{source}: {e}") from None


def save_arch(path: str | os.PathLike, space: ChannelSpace, arch: dict[str, int]) -> None:
    write_json(path, arch_to_dict(space, arch))


def load_arch(path: str | os.PathLike) -> tuple[ChannelSpace, dict[str, int]]:
    return arch_from_dict(read_json(path), source=str(path))
