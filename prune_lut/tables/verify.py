"""Measure a search's best archs on its budget devices; the winner is the best one that meets them measured.

A lookup table predicts a network's latency from its layers, and a search that optimizes against
the prediction finds the archs it under-predicts: the quickstart measured its five best 6-10% above
their predictions while the uniform arch was within 1.5% (docs/BENCHMARKS.md). So after the
search, the best ``k`` archs and the uniform baseline are exported (fresh weights: latency does
not depend on them) and measured interleaved, in one call per device, on every budget's device:
with the profile stored in that device's table, here, or over SSH on a board (``--host``, or the
profile's ``host``).
The winner is the first arch in search order whose measured latency meets every budget.
The table's reference network is then measured beside the best arch, as validation measures it: how
far it runs from its time in the table's frame (``latency/frame.py``: the device as it ran when the
table was last calibrated) tells a device that has drifted since, or another device, apart from an
arch the table mispredicts.
"""
from __future__ import annotations

from ..devices import Device
from ..errors import ParamError, UserError
from ..latency.measure import get_meter, measure_beside, measure_many
from ..latency.frame import drift, frame_of
from ..latency.frame import warnings as frame_warnings
from ..pruning.space import ChannelSpace
from .networks import onnx_bytes

def first_meeting(measured: list[dict[str, float]], budgets: dict[str, float]) -> int | None:
    """Index of the first arch whose measured latency meets every budget (search order), or None."""
    return next((i for i, m in enumerate(measured) if all(m[d] <= ms for d, ms in budgets.items())), None)


def budget_meters(budgets: list, host: tuple[str, ...] | str | None = None) -> dict[str, tuple]:
    """(device profile, meter, the table) per budget device, from the profiles stored in the tables of
    ``budgets`` (the search's :class:`~prune_lut.pruning.search.LatencyBudget` s, tables already loaded).

    ``host`` (ssh destinations of identical boards) is where the one budget's device is measured, or,
    with several budgets, the one budget whose device is another board. Raises one clear line where a
    device cannot be measured, so a search asked to verify fails before it starts, not after.
    """
    devs, luts = {}, {}
    for b in budgets:
        lut = luts[b.device] = b.predictor.lut
        if not lut.device:
            raise UserError(f"{b.lut_path}: the table names no device profile, so its device cannot be measured")
        devs[b.device] = Device.from_dict(lut.device)
    boards = [n for n, d in devs.items() if d.remote_only and not d.host]
    if host and len(devs) > 1 and len(boards) != 1:
        raise UserError(f"--host names one board, but {len(devs)} budgets are on {len(boards)} other boards "
                        f"({', '.join(boards) or 'none: every device is this host'}); verify them one device per search")
    remote = boards if len(devs) > 1 or not host else list(devs)
    out = {}
    for name, dev in devs.items():
        if name in boards and not host:
            raise UserError(f"--verify measures on each budget's device, and {name!r} is another board "
                            f"({dev.description or dev.backend}); add --host USER@BOARD, or search without --verify")
        try:
            out[name] = (dev, get_meter(dev, host if name in remote else None), luts[name])
        except UserError as e:
            raise UserError(f"--verify measures on each budget's device: {e}") from None
    return out


def verify_result(result: dict, space: ChannelSpace, k: int, meters: dict) -> dict:
    """Measure the ``k`` (>= 1) best archs of ``result`` and its uniform baseline with ``meters``
    (:func:`budget_meters`); return the ``verified`` record."""
    budgets = {b["device"]: b["latency_ms"] for b in result["budgets"]["latency"]}
    entries = list(result["top"][:k])
    base = result.get("uniform_baseline")
    archs = [space.check_arch(e["arch"]["genes"]) for e in entries + ([base] if base else [])]
    models = [onnx_bytes(space, a) for a in archs]
    measured = [{} for _ in archs]
    spreads = [{} for _ in archs]
    warnings, measured_on, reference = [], {}, {}
    for name, (dev, meter, lut) in meters.items():
        try:
            here = meter.info()
            measured_on[name] = {"host": here.get("ssh_host") or here.get("host"), "cpu": here.get("cpu"),
                                 "gpu": here.get("gpu"), "threads": dev.threads}
            for i, m in enumerate(measure_many(dev, models, meter=meter)):
                measured[i][name], spreads[i][name] = m.median_ms, m.spread_ms
            ref_ms = measure_beside(dev, onnx_bytes(space, space.full()), models[0], meter=meter).median_ms
            frame = frame_of(lut)
            reference[name] = drift(frame, ref_ms)
            warnings += [f"{name}: {w}" for w in frame_warnings(frame, here, ref_ms, dev.backend)]
        finally:
            if hasattr(meter, "close"):  # ssh connections to boards
                meter.close()

    def row(e: dict, i: int) -> dict:
        return {"measured_ms": measured[i], "spread_ms": spreads[i],
                "error_pct": {d: 100 * (e["latency_ms"][d] / measured[i][d] - 1) for d in budgets},
                "meets": all(measured[i][d] <= ms for d, ms in budgets.items())}

    rows = [{"rank": e["rank"], "accuracy": e["accuracy"], **row(e, i)} for i, e in enumerate(entries)]
    pick = first_meeting(measured[:len(entries)], budgets)
    return {"k": len(entries), "archs": rows, "measured_on": measured_on, "reference": reference, "warnings": warnings,
            "uniform": {"ratio": base["ratio"], **row(base, len(entries))} if base else None,
            "winner_rank": None if pick is None else entries[pick]["rank"]}


class Verifier:
    """``search --verify K``: the search's best ``k`` archs measured on its budget devices (here, or on
    the board ``host``); plugged into ``pruning.search.search_checkpoint``."""

    def __init__(self, k: int, host: tuple[str, ...] | str | None = None):
        if k < 1:
            raise ParamError("verify", f"must be >= 1 to measure (0: no measurement), got {k}")
        self.k, self.host, self.meters = k, host, None

    def prepare(self, budgets: list) -> None:
        """Check, before the search, that every budget's device can be measured."""
        self.meters = budget_meters(budgets, self.host)

    def verify(self, result: dict, space: ChannelSpace) -> dict:
        return verify_result(result, space, self.k, self.meters)
