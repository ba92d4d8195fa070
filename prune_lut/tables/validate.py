"""`prune-lut validate` for a channel space: sample archs, export them, hand them to ``latency.validate``.

``latency/`` knows no families, so this is where a LUT's space becomes networks: the space is
rebuilt from the LUT's description, archs are drawn over the whole predicted latency range
(``sampling.stratified_archs``), each becomes ONNX bytes on demand, and the table's reference
network (the space's full-width member, as every build measures it) is exported beside them.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ParamError, UserError
from ..files import read_json, write_json
from ..latency import validate as V
from ..latency.lutfile import LUT
from ..latency.predictor import Predictor
from ..pruning.space import ChannelSpace
from .networks import onnx_bytes
from .sampling import SampledArch, stratified_archs

log = logging.getLogger(__name__)


def table_space(lut: LUT, source: str = "LUT") -> ChannelSpace:
    """The channel space a LUT covers (refused when its description no longer gives the recorded hash)."""
    try:
        space = ChannelSpace.from_description(lut.space)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{source}: the table's space description is incomplete ({e}); rebuild the table") from None
    if lut.space_hash and space.hash != lut.space_hash:
        raise UserError(f"{source}: the table's space hash {lut.space_hash} does not match its description "
                        f"({space.hash}): the family definition changed since it was built; rebuild the table")
    return space


def default_record_path(lut_path: str | Path) -> Path:
    """``<lut name without .json.gz>.validation.json`` beside the LUT."""
    p = Path(lut_path)
    name = p.name[: -len(".json.gz")] if p.name.endswith(".json.gz") else p.stem
    return p.with_name(name + ".validation.json")


def validation_nets(space: ChannelSpace, sampled: list[SampledArch]) -> list[V.Net]:
    """The sampled archs as ``latency.validate.Net`` objects (ONNX made on demand, one at a time)."""
    return [V.Net(id=f"s{i:03d}", specs=space.layer_specs(s.arch), onnx=lambda a=s.arch: onnx_bytes(space, a),
                  macs=space.macs(s.arch), params=space.params(s.arch),
                  info={"vector": list(space.vector(s.arch)), "kind": s.kind, "rounded": s.rounded})
            for i, s in enumerate(sampled)]


def validate_table(lut_path: str | Path, samples: int = 50, seed: int = 0, fit: bool = False, host: str | None = None,
                   fit_share: float = 0.5, repeat_share: float = 0.2, record_path: str | Path | None = None,
                   drift: str = "global", progress: bool = True) -> dict:
    """Validate the table at ``lut_path`` on its device; with ``fit`` store the calibration in it.

    Returns the record (also written to ``record_path``, default beside the LUT).
    """
    if samples < 3:
        raise ParamError("samples", f"must be at least 3 (got {samples}); 50 gives stable figures")
    if fit and samples < 12:
        raise ParamError("samples", f"must be at least 12 to fit a calibration (half to fit, half held out), got {samples}")
    if not 0 <= repeat_share <= 1 or not 0 < fit_share < 1:
        raise ParamError("repeat_share" if not 0 <= repeat_share <= 1 else "fit_share",
                         "must lie in [0, 1]" if not 0 <= repeat_share <= 1 else "must lie in (0, 1)")
    lut = LUT.load(lut_path)
    space = table_space(lut, str(lut_path))
    multiple = int((lut.device or {}).get("multiple") or 1)
    table = Predictor(lut)
    sampled = stratified_archs(space, samples, table.table_sum, seed=seed, multiple=multiple)
    nets = validation_nets(space, sampled)
    reference = onnx_bytes(space, space.full())
    record = V.validate_networks(lut, nets, reference, V.meter_for(lut, host), fit=fit, fit_share=fit_share,
                                 repeat_share=repeat_share, seed=seed, drift=drift, progress=progress)
    record["lut"] = str(lut_path)
    if fit:
        LUT.save(V.apply_calibration(lut, record), lut_path)
    out = Path(record_path) if record_path else default_record_path(lut_path)
    write_json(out, record)
    record["record_path"] = str(out)
    return record


def load_record(path: str | Path) -> dict:
    """A validation record, its report recomputed from its samples."""
    rec = read_json(path)
    if not isinstance(rec, dict) or rec.get("schema") != V.SCHEMA:
        raise UserError(f"{path}: not a validation record (schema {V.SCHEMA}); write one with `prune-lut validate`")
    try:
        rec["report"] = V.compute_report(rec)
    except (KeyError, TypeError, IndexError, ValueError) as e:
        raise UserError(f"{path}: damaged validation record (bad field {e}); run `prune-lut validate` again") from None
    return rec
