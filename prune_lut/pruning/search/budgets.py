"""Search budgets: one latency limit per device's lookup table, an optional MACs limit, and the
uniform-width baseline that meets them. A budget is in the milliseconds of its table's frame
(``latency/frame.py``): the device the table was last calibrated on, as it ran then."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ...errors import ParamError, UserError
from ...latency.frame import frame_of
from ...latency.lutfile import LUT
from ...latency.predictor import Predictor
from ..space import ChannelSpace

Arch = dict[str, int]


@dataclass
class LatencyBudget:
    """A latency limit on one device, predicted from that device's lookup table."""

    device: str
    lut_path: str
    predictor: Predictor
    ms: float

    def describe(self) -> dict:
        lut = self.predictor.lut
        return {"device": self.device, "lut": str(self.lut_path), "latency_ms": self.ms,
                "calibrated": self.predictor.calibrated, "lut_space_hash": lut.space_hash,
                "lut_date": (lut.provenance or {}).get("date"), "frame": frame_of(lut)}


def load_budgets(space: ChannelSpace, luts: Sequence[str], latency_ms: Sequence[float]) -> list[LatencyBudget]:
    """One budget per (LUT file, limit) pair; each table must cover ``space``."""
    if len(luts) != len(latency_ms):
        raise UserError(f"give one --latency-ms per --lut ({len(luts)} tables, {len(latency_ms)} limits)")
    if not luts:
        raise UserError("give at least one --lut FILE --latency-ms MS (the device's lookup table and its budget)")
    out, names = [], set()
    for path, ms in zip(luts, latency_ms):
        if not ms > 0:
            raise ParamError("latency_ms", f"must be > 0, got {ms}")
        lut = LUT.load(path, space_hash=space.hash, space=space.describe())
        name = str((lut.device or {}).get("name") or Path(path).name.split(".")[0])
        base, i = name, 2
        while name in names:  # two tables of one device (e.g. two boards): keep both, distinctly named
            name, i = f"{base}#{i}", i + 1
        names.add(name)
        out.append(LatencyBudget(name, str(path), Predictor(lut), float(ms)))
    return out


class Constraints:
    """Predicted latency per device (cached per arch) and the budgets an arch must meet."""

    def __init__(self, space: ChannelSpace, budgets: Sequence[LatencyBudget], macs_limit: float | None = None):
        self.space, self.budgets, self.macs_limit = space, list(budgets), macs_limit
        self._lat: dict[tuple, dict[str, float]] = {}

    @property
    def devices(self) -> list[str]:
        return [b.device for b in self.budgets]

    def latencies(self, arch: Arch) -> dict[str, float]:
        key = self.space.vector(arch)
        hit = self._lat.get(key)
        if hit is None:
            specs = self.space.layer_specs(arch)
            hit = self._lat[key] = {b.device: b.predictor.predict_ms(specs) for b in self.budgets}
        return hit

    def feasible(self, arch: Arch) -> bool:
        if self.macs_limit is not None and self.space.macs(arch) > self.macs_limit:
            return False
        lat = self.latencies(arch)
        return all(lat[b.device] <= b.ms for b in self.budgets)

    def check_reachable(self) -> None:
        """Answer an impossible budget at once, naming the smallest value the space reaches."""
        small = self.space.smallest()
        if self.macs_limit is not None and self.space.macs(small) > self.macs_limit:
            m = self.space.macs(small) / 1e6
            raise UserError(f"no arch meets --macs-m {self.macs_limit / 1e6:g}: the smallest in the space has "
                            f"{m:.3f} M MACs; raise --macs-m to at least that")
        lat = self.latencies(small)
        for b in self.budgets:
            if lat[b.device] > b.ms:
                raise UserError(f"no arch meets {b.ms:g} ms on {b.device}: the smallest arch in the space is "
                                f"predicted at {lat[b.device]:.4g} ms there; raise --latency-ms to at least that")

    def describe(self) -> dict:
        return {"latency": [b.describe() for b in self.budgets],
                "macs": None if self.macs_limit is None else int(self.macs_limit)}


def uniform_baseline(space: ChannelSpace, constraints: Constraints) -> tuple[float, Arch] | None:
    """The widest uniform-ratio arch (on the space's grid) that meets every budget."""
    seen = set()
    for r in sorted(space.grid, reverse=True):
        arch = space.uniform(r)
        if space.vector(arch) in seen:
            continue
        seen.add(space.vector(arch))
        if constraints.feasible(arch):
            return r, arch
    return None
