"""LUT files: gzip JSON, versioned, never pickled, written atomically.

Layout (schema ``prune-lut.lut/1``)::

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
import zlib
from dataclasses import dataclass, field
from pathlib import Path

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
    def load(cls, path: str | os.PathLike, space_hash: str | None = None) -> "LUT":
        """Read a LUT file; refuse a damaged file, another schema, or (given ``space_hash``) another space."""
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: no such LUT file; build one with `prune-lut build --device DEVICE`")
        try:
            with gzip.open(p, "rt", encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, EOFError, zlib.error, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"{p}: damaged or not a LUT file ({type(e).__name__}); rebuild it or fetch it again") from None
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else None
            raise UserError(f"{p}: unknown LUT schema {got!r} (this prune-lut reads {SCHEMA}); "
                            "upgrade prune-lut or rebuild the table")
        try:
            lut = cls(device=d["device"], provenance=d["provenance"], space=d["space"], entries=d["entries"],
                      reference=d.get("reference"), calibration=d.get("calibration"),
                      regressor=d.get("regressor"), extra=d.get("extra") or {})
            for k, e in lut.entries.items():
                if e["source"] not in SOURCES or not e["median_ms"] >= 0:
                    raise ValueError(k)
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{p}: damaged LUT file (bad field {e}); rebuild it or fetch it again") from None
        if space_hash is not None and lut.space_hash != space_hash:
            raise UserError(f"{p}: table covers another space (hash {lut.space_hash}, expected {space_hash}: "
                            f"{lut.space.get('family')} at {lut.space.get('resolution')}); build one for this space")
        return lut
