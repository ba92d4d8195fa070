"""`prune-lut validate` and `prune-lut calibrate` for a channel space: sample archs, export them,
hand them to ``latency.validate``.

``latency/`` knows no families, so this is where a LUT's space becomes networks: the space is
rebuilt from the LUT's description, archs are drawn over the whole predicted latency range
(``sampling.stratified_archs``), each becomes ONNX bytes on demand, and the table's reference
network (the space's full-width member, as every build measures it) is exported beside them.
Each run writes its record (every sample, every figure's inputs) to a new file beside the table,
named after the command and the time, so no run replaces another's.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

from .. import schemas
from ..errors import ParamError, UserError
from ..files import write_json
from ..latency import validate as V
from ..latency.lutfile import LUT
from ..latency.predictor import Predictor
from ..pruning.space import ChannelSpace
from .networks import onnx_bytes
from .sampling import SampledArch, stratified_archs

log = logging.getLogger(__name__)
CALIBRATE_SAMPLES = 30  # runs that adapted a shipped table to another machine (docs/BENCHMARKS.md, issue 15)


def table_space(lut: LUT, source: str = "LUT") -> ChannelSpace:
    """The channel space a LUT covers (refused when its description no longer gives the recorded hash)."""
    try:
        space = ChannelSpace.from_description(lut.space)
    except (KeyError, TypeError, ValueError, UserError) as e:
        raise UserError(f"{source}: the table's space description is incomplete or invalid ({e}); "
                        "rebuild the table") from None
    if lut.space_hash and space.hash != lut.space_hash:
        raise UserError(f"{source}: the table's space hash {lut.space_hash} does not match its description "
                        f"({space.hash}): the family definition changed since it was built; rebuild the table")
    return space


def record_path_for(lut_path: str | Path, command: str) -> Path:
    """``<lut name>.<command>-<UTC time>.json`` beside the table: a new file for every run."""
    p = Path(lut_path)
    name = p.name[: -len(".json.gz")] if p.name.endswith(".json.gz") else p.stem
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = p.with_name(f"{name}.{command}-{stamp}.json")
    i = 2
    while out.exists():  # two runs within one second
        out = p.with_name(f"{name}.{command}-{stamp}-{i}.json")
        i += 1
    return out


def validation_nets(space: ChannelSpace, sampled: list[SampledArch]) -> list[V.Net]:
    """The sampled archs as ``latency.validate.Net`` objects (ONNX made on demand, one at a time)."""
    return [V.Net(id=f"s{i:03d}", specs=space.layer_specs(s.arch), onnx=lambda a=s.arch: onnx_bytes(space, a),
                  macs=space.macs(s.arch), params=space.params(s.arch),
                  info={"vector": list(space.vector(s.arch)), "kind": s.kind, "rounded": s.rounded})
            for i, s in enumerate(sampled)]


def _prepare(lut_path, samples: int, seed: int, repeat_share: float, minimum: int):
    if samples < minimum:
        raise ParamError("samples", f"must be at least {minimum}, got {samples}")
    if not 0 <= repeat_share <= 1:
        raise ParamError("repeat_share", f"must lie in [0, 1], got {repeat_share}")
    lut = LUT.load(lut_path)
    space = table_space(lut, str(lut_path))
    multiple = int((lut.device or {}).get("multiple") or 1)
    sampled = stratified_archs(space, samples, Predictor(lut).table_sum, seed=seed, multiple=multiple)
    return lut, validation_nets(space, sampled), onnx_bytes(space, space.full())


def validate_table(lut_path: str | Path, samples: int = 50, seed: int = 0, host: str | None = None,
                   repeat_share: float = 0.2, record_path: str | Path | None = None, drift: str = "none",
                   progress: bool = True) -> dict:
    """Measure ``samples`` archs on the table's device now and compare with its predictions.

    Returns the record (also written to ``record_path``, default a new file beside the LUT)."""
    lut, nets, reference = _prepare(lut_path, samples, seed, repeat_share, 3)
    record = V.validate_networks(lut, nets, reference, V.meter_for(lut, host), repeat_share=repeat_share,
                                 seed=seed, drift=drift, progress=progress)
    return _written(record, lut_path, record_path, "validate")


def calibrate_table(lut_path: str | Path, samples: int = CALIBRATE_SAMPLES, seed: int = 0, host: str | None = None,
                    repeat_share: float = 0.2, record_path: str | Path | None = None, out: str | Path | None = None,
                    drift: str = "none", progress: bool = True) -> dict:
    """Measure ``samples`` archs on the table's device now, fit the calibration that generalizes best
    (cross-validated), and store it with its frame in the table (``out``: a calibrated copy instead).

    Returns the record (also written to ``record_path``, default a new file beside the LUT)."""
    lut, nets, reference = _prepare(lut_path, samples, seed, repeat_share, 5)
    record = V.calibrate_networks(lut, nets, reference, V.meter_for(lut, host), repeat_share=repeat_share,
                                  seed=seed, drift=drift, progress=progress)
    target = Path(out) if out else Path(lut_path)
    LUT.save(V.apply_calibration(lut, record), target)
    record["lut"], record["calibrated_lut"] = str(lut_path), str(target)
    return _written(record, target, record_path, "calibrate")


def _written(record: dict, lut_path, record_path, command: str) -> dict:
    record.setdefault("lut", str(lut_path))
    out = Path(record_path) if record_path else record_path_for(lut_path, command)
    write_json(out, record)
    record["record_path"] = str(out)
    return record


def load_record(path: str | Path) -> dict:
    """A validation or calibration record (``schemas.ValidationRecord``), its report recomputed from its samples."""
    rec = schemas.load(path, "record")
    rec["report"] = V.compute_report(rec)
    return rec
