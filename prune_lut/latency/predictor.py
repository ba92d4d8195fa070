"""Latency prediction from a lookup table: the table sum, corrected by the table's calibration.

The search predicts thousands of archs, so everything per key (median, spread, op group, MACs)
is looked up once per distinct :class:`LayerSpec` and cached; a prediction is then a few dict
hits and a dot product.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from ..errors import UserError
from .calibration import Calibration, features_from_groups
from .lutfile import LUT
from .spec import LayerSpec

log = logging.getLogger(__name__)

# The op groups the calibration may scale separately (see calibration.py): what a layer *does*
# on a device decides how far its isolated/profiled time is from its time inside the network.
GROUPS = ("conv", "pwconv", "dwconv", "add", "pool", "linear")


def op_group(spec: LayerSpec) -> str:
    """The calibration group of a layer: full kxk conv, pointwise conv, depthwise conv, add, pool, linear."""
    if spec.op == "conv":
        if spec.groups > 1:
            return "dwconv"
        return "pwconv" if spec.kernel == 1 else "conv"
    if spec.op in ("maxpool", "gap"):
        return "pool"
    return spec.op  # add, linear


def _calibration_of(lut: LUT) -> tuple[Calibration | None, str | None]:
    """The LUT's calibration and where it came from: ``calibrate`` (fitted by ``prune-lut calibrate`` on
    end-to-end runs, cross-validated), ``build`` (the build's own ``e2e = a * sum + b`` over the networks
    it profiled, used until a calibration replaces it), or none."""
    if lut.calibration:
        return Calibration.from_dict(lut.calibration), "calibrate"
    s2e = (lut.extra or {}).get("sum_to_e2e")
    if isinstance(s2e, dict) and "a" in s2e and "b" in s2e:
        held = s2e.get("heldout") or {}
        q = float(held.get("max_abs_rel_err") or s2e.get("median_abs_rel_err") or 0.0)
        return Calibration("linear", {"sum": float(s2e["a"]), "1": float(s2e["b"])}, (-q, q),
                           meta={"source": "build", **s2e}), "build"
    return None, None


@dataclass(frozen=True)
class Prediction:
    """A predicted latency (ms) with an interval.

    ``ms`` is calibrated when ``calibrated``; ``table_sum_ms`` is the raw sum of the table's entries.
    ``low``/``high`` bound the latency: the calibration's held-out residual quantiles (when the table
    has a calibration) combined with the entries' measurement spreads.
    """

    ms: float
    low: float
    high: float
    table_sum_ms: float
    calibrated: bool

    def to_dict(self) -> dict:
        return asdict(self)


class Predictor:
    """Predicts network latency from a :class:`LUT` (and its calibration, when it has one)."""

    def __init__(self, lut: LUT):
        self.lut = lut
        self.calibration, self.calibration_source = _calibration_of(lut)
        self._entries = lut.entries
        self._cache: dict[LayerSpec, tuple[float, float, int, int] | None] = {}
        self._gindex = {g: i for i, g in enumerate(GROUPS)}

    @property
    def calibrated(self) -> bool:
        return self.calibration is not None

    # ---- per-spec lookups ---------------------------------------------------------------
    def _lookup(self, spec: LayerSpec) -> tuple[float, float, int, int] | None:
        """(median ms, spread ms squared, group index, MACs) of one layer, or None when the table lacks it."""
        try:
            return self._cache[spec]
        except KeyError:
            pass
        e = self._entries.get(spec.key)
        hit = None if e is None else (float(e["median_ms"]), float(e.get("spread_ms", 0.0)) ** 2,
                                      self._gindex[op_group(spec)], spec.macs)
        self._cache[spec] = hit
        return hit

    def _missing(self, specs: Iterable[LayerSpec]) -> UserError:
        keys = [s.key for s in specs if self._lookup(s) is None]
        dev = (self.lut.device or {}).get("name", "DEVICE")
        return UserError(
            f"the table has no entry for {keys[0]} ({len(dict.fromkeys(keys))} keys missing): it was built for "
            f"another space or is incomplete; extend it with `prune-lut build --device {dev} --resume` for this "
            "space, or rebuild it")

    def group_sums(self, specs: Iterable[LayerSpec]) -> tuple[list[float], float, int]:
        """Per-op-group table sums (ms, in :data:`GROUPS` order), summed spread^2, and total MACs."""
        sums = [0.0] * len(GROUPS)
        var = 0.0
        macs = 0
        specs = list(specs)
        for s in specs:
            hit = self._lookup(s)
            if hit is None:
                raise self._missing(specs)
            ms, sp2, g, m = hit
            sums[g] += ms
            var += sp2
            macs += m
        return sums, var, macs

    def features(self, specs: Iterable[LayerSpec]) -> dict[str, float]:
        """What a calibration model reads: total and per-group table sums (ms) and GMACs."""
        sums, _, macs = self.group_sums(specs)
        return features_from_groups(dict(zip(GROUPS, sums)), macs)

    def table_sum(self, specs: Iterable[LayerSpec]) -> float:
        """The uncorrected sum of the table's entries for ``specs`` (ms)."""
        return sum(self.group_sums(specs)[0])

    # ---- prediction ---------------------------------------------------------------------
    def _calibrated(self, sums: list[float], macs: int) -> float:
        """The calibrated latency of per-group table sums (the raw sum without a calibration)."""
        if self.calibration is None:
            return sum(sums)
        return self.calibration.predict(features_from_groups(dict(zip(GROUPS, sums)), macs))

    def predict(self, specs: Iterable[LayerSpec]) -> Prediction:
        """Predicted latency of a network given as its layer specs (UserError when a key is missing)."""
        return self.predict_sums(*self.group_sums(specs))

    def predict_sums(self, sums: Sequence[float], var: float, macs: int) -> Prediction:
        """:meth:`predict` from per-group table sums (ms, :data:`GROUPS` order), summed spread^2 and MACs,
        for callers that supply some layers' times themselves (``model_predict`` fills missing keys)."""
        total, ms = sum(sums), self._calibrated(list(sums), macs)
        spread = math.sqrt(var)  # independent per-entry noise adds in quadrature
        if self.calibration is None:
            return Prediction(total, max(0.0, total - spread), total + spread, total, False)
        lo_q, hi_q = self.calibration.interval
        spread *= ms / total if total > 0 else 1.0
        low = ms - math.hypot(ms * max(0.0, -lo_q), spread)
        high = ms + math.hypot(ms * max(0.0, hi_q), spread)
        return Prediction(ms, max(0.0, low), high, total, True)

    def predict_ms(self, specs: Iterable[LayerSpec]) -> float:
        """Shortcut: the (calibrated, when possible) predicted latency in ms."""
        sums, _, macs = self.group_sums(specs)
        return self._calibrated(sums, macs)
