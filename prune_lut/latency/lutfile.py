"""LUT files: gzip JSON, versioned, never pickled, written atomically.

Layout (schema ``prune-lut.lut/1``, checked on load by ``schemas.Table``)::

    {"schema": "prune-lut.lut/1",
     "device": {...profile...},            # the device profile the table was measured with
     "provenance": {...},                  # host, CPU/GPU, runtime + library versions, threads, date, protocol
     "space": {..., "hash": "..."},        # what the table covers (opaque here; the pruning side fills it)
     "entries": {key: {"median_ms", "spread_ms", "reps", "source": "measured"|"predicted", ...}},
     "reference": {...} | null,            # a whole-network measurement taken with the table, for drift
     "calibration": {...} | null,          # fitted by `prune-lut calibrate` (its frame in meta.frame)
     "regressor": {...} | null,            # error figures of the filler for `predicted` entries
     "extra": {...}}                       # free-form (shards, boards, ...)
"""
from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import schemas
from ..errors import UserError
from ..files import write_atomic

SCHEMA = "prune-lut.lut/1"
SOURCES = ("measured", "predicted")


@dataclass
class LUT:
    device: dict
    provenance: dict
    space: dict
    entries: dict[str, dict] = field(default_factory=dict)
    reference: dict | None = None
    calibration: dict | None = None
    regressor: dict | None = None
    extra: dict = field(default_factory=dict)

    # ---- entries ------------------------------------------------------------------------
    def add(self, key: str, median_ms: float, spread_ms: float, reps: int, source: str = "measured", **more) -> None:
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}")
        self.entries[key] = {"median_ms": float(median_ms), "spread_ms": float(spread_ms), "reps": int(reps),
                             "source": source, **more}

    def measured_keys(self) -> set[str]:
        return {k for k, e in self.entries.items() if e["source"] == "measured"}

    def missing(self, keys) -> list[str]:
        """The keys of ``keys`` this table has no entry for (order kept, duplicates dropped)."""
        return [k for k in dict.fromkeys(keys) if k not in self.entries]

    @property
    def space_hash(self) -> str | None:
        return self.space.get("hash")

    # ---- files --------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "device": self.device, "provenance": self.provenance, "space": self.space,
                "entries": self.entries, "reference": self.reference, "calibration": self.calibration,
                "regressor": self.regressor, "extra": self.extra}

    def save(self, path: str | os.PathLike) -> None:
        """Atomic write: a reader (or a crash) never sees half a file."""
        def write(tmp: Path) -> None:
            with gzip.open(tmp, "wt", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, separators=(",", ":"), sort_keys=True)

        write_atomic(path, write)

    @classmethod
    def load(cls, path: str | os.PathLike, space_hash: str | None = None, space: dict | None = None) -> "LUT":
        """Read a LUT file, checked against its schema (``schemas.Table``); refuse a damaged file, another
        schema, or (given ``space_hash``) a table of another space, naming the option that differs when
        ``space`` (the expected space's description) is given."""
        p = Path(path)
        if p.is_dir():
            raise UserError(f"{p} is a folder, not a LUT file; give the table file (e.g. {p}/cpu.json.gz)")
        if not p.exists():
            raise UserError(f"{p}: no such LUT file; build one with `prune-lut build --device DEVICE`")
        d = schemas.load(p, "table", gz=True)
        lut = cls(device=d["device"], provenance=d["provenance"], space=d["space"], entries=d["entries"],
                  reference=d.get("reference"), calibration=d.get("calibration"), regressor=d.get("regressor"),
                  extra=d.get("extra") or {})
        if space_hash is not None and lut.space_hash != space_hash:
            raise UserError(f"{p}: the table covers another space ({space_difference(lut.space, space or {})}; "
                            f"hash {lut.space_hash}, expected {space_hash}); use or build a table for this space")
        return lut


SPACE_OPTIONS = ("family", "resolution", "num_classes", "in_channels", "small_input", "multiple", "grid", "rounding")
OPTION_NAMES = {"family": "--family", "resolution": "--resolution", "num_classes": "--num-classes",
                "in_channels": "--in-channels", "small_input": "--small-input", "multiple": "--multiple",
                "grid": "grid", "rounding": "rounding"}


def space_difference(have: dict, want: dict, here: str = "the table", there: str = "this one") -> str:
    """Which options two space descriptions differ in, e.g. ``--multiple 16 in the table, 8 in this one``."""
    defaults = {"in_channels": 3, "small_input": False, "multiple": 1, "rounding": "round"}
    diff = []
    for k in SPACE_OPTIONS:
        a, b = have.get(k, defaults.get(k)), want.get(k, defaults.get(k))
        if a != b and k in want:
            shown = (lambda v: f"{len(v)} ratios" if isinstance(v, list) else v)
            diff.append(f"{OPTION_NAMES[k]} {shown(a)} in {here}, {shown(b)} in {there}")
    if diff:
        return "; ".join(diff)
    if not want:
        return f"{have.get('family')} at {have.get('resolution')}, multiple {have.get('multiple')}"
    return "same options, other widths: the family's definition changed since one of them was made"
