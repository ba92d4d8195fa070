"""Lookup tables that were really measured, shipped with the package, with their provenance.

Files are named after the hardware that measured them:
``<device>-<cpu-or-gpu-slug>-<family>[-small]-<resolution>[-c<in_channels>][-k<classes>].json.gz``
(see ``table_name``); ``README.md`` here lists how each was built. ``find_table(space, device)``
returns the shipped table for a space, preferring one measured on this host's CPU model.
"""
from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path

from ..latency.lutfile import LUT

log = logging.getLogger(__name__)
DATA_DIR = Path(__file__).parent


def slug(text: str) -> str:
    """``"AMD EPYC 7B13 64-Core Processor"`` -> ``"amd-epyc-7b13-64-core-processor"``."""
    return re.sub(r"[^a-z0-9]+", "-", (text or "unknown").lower()).strip("-")


def table_name(lut: LUT) -> str:
    """The file name a table ships under (device, hardware, space)."""
    s, p = lut.space, lut.provenance
    hw = p.get("gpu") if lut.device.get("backend") != "onnxruntime" and p.get("gpu") else p.get("cpu")
    name = f"{lut.device.get('name')}-{slug(hw)}-{s['family']}{'-small' if s.get('small_input') else ''}-{s['resolution']}"
    if s.get("in_channels", 3) != 3:
        name += f"-c{s['in_channels']}"
    if s.get("num_classes", 1000) != 1000:
        name += f"-k{s['num_classes']}"
    return name + ".json.gz"


@lru_cache(maxsize=None)
def _header(path: Path) -> tuple[str | None, str | None, str | None]:
    lut = LUT.load(path)
    return lut.device.get("name"), lut.space_hash, lut.provenance.get("cpu")


def shipped_tables() -> list[Path]:
    return sorted(DATA_DIR.glob("*.json.gz"))


def find_table(space, device: str = "cpu") -> Path | None:
    """The shipped table for ``space`` (anything with ``.hash``) on ``device``, or None.

    Several matches (tables of the same space from different CPUs): the one measured on this
    host's CPU model wins; otherwise the first, with a warning that the hardware differs.
    """
    from ..latency.worker import cpu_model

    hits = [p for p in shipped_tables() if _header(p)[:2] == (device, space.hash)]
    if not hits:
        return None
    here = cpu_model()
    for p in hits:
        if _header(p)[2] == here:
            return p
    log.warning("shipped table %s was measured on %s, not on this host's %s: predictions may be off; "
                "build your own with `prune-lut build`", hits[0].name, _header(hits[0])[2], here)
    return hits[0]


__all__ = ["find_table", "shipped_tables", "table_name", "slug", "DATA_DIR"]
