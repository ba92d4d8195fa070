"""Operations on whole LUT files: merge shards, summarise for ``prune-lut lut info``."""
from __future__ import annotations

import copy

import numpy as np

from ..errors import UserError
from .build import MAX_OBS, fit_sum_to_e2e
from .frame import frame_of
from .lutfile import LUT

# provenance fields that must agree for two shards to come from identical boards
BOARD_FIELDS = ("cpu", "machine", "cores", "gpu", "onnxruntime", "torch", "tensorrt", "protocol", "threads",
                "precision")


def merge(luts: list[LUT], names: list[str] | None = None) -> LUT:
    """Join shards of one space measured on identical boards; refuse anything else.

    Entries measured in several shards pool their in-context observations; a measured entry
    replaces a predicted one. Regressor figures are dropped (predicted entries are kept only
    for keys no shard measured); ``sum_to_e2e`` is refitted over every shard's networks.
    """
    names = names or [f"file {i + 1}" for i in range(len(luts))]
    if len(luts) < 2:
        raise UserError("lut merge needs at least two files")
    first = luts[0]
    seen: dict[tuple, str] = {}
    for lut, name in zip(luts, names):  # each shard once: a shard twice adds nothing and hides a missing one
        shard, p = lut.extra.get("shard"), lut.provenance
        build = (shard, p.get("host"), p.get("date")) if shard is None else (shard,)
        if build in seen:
            raise UserError(f"{name} and {seen[build]} are " + (
                f"both shard {shard}; merge each shard once" if shard else
                f"the same build ({p.get('host')}, {p.get('date')}); merge each table once"))
        seen[build] = name
    for lut, name in zip(luts[1:], names[1:]):
        if lut.space_hash != first.space_hash:
            raise UserError(f"{name} covers another space ({lut.space.get('family')} hash {lut.space_hash}) than "
                            f"{names[0]} ({first.space.get('family')} hash {first.space_hash}); merge shards of one build")
        if lut.device != first.device:
            raise UserError(f"{name} was measured with device {lut.device.get('name')!r} and {names[0]} with "
                            f"{first.device.get('name')!r} (or another profile of it); merge shards of one device")
        for f in BOARD_FIELDS:
            if lut.provenance.get(f) != first.provenance.get(f):
                raise UserError(f"{name} and {names[0]} come from different boards or runtimes ({f}: "
                                f"{lut.provenance.get(f)!r} vs {first.provenance.get(f)!r}); merge only identical boards")
    out = LUT(device=first.device, provenance=copy.deepcopy(first.provenance), space=first.space, entries={},
              reference=copy.deepcopy(first.reference), extra={"shard": None, "networks": []})
    out.provenance["merged_from"] = [{"name": n, "host": lut.provenance.get("host"), "date": lut.provenance.get("date"),
                                      "shard": lut.extra.get("shard"), "entries": len(lut.entries)}
                                     for lut, n in zip(luts, names)]
    for lut in luts:
        for k, e in lut.entries.items():
            have = out.entries.get(k)
            if e["source"] == "predicted":
                if have is None:
                    out.entries[k] = dict(e)
                continue
            if have is None or have["source"] == "predicted":
                out.entries[k] = copy.deepcopy(e)
                continue
            have.update({f: (_observations(have, f) + _observations(e, f))[:MAX_OBS]
                         for f in ("obs", "refs", "spreads")})
            have["median_ms"] = float(np.median(have["obs"]))
            have["spread_ms"] = float(np.median(have["spreads"]))
            have["reps"] += e["reps"]
        out.extra["networks"] += lut.extra.get("networks", [])
    held = {n["id"] for n in out.extra["networks"] if n.get("heldout")}
    out.extra["sum_to_e2e"] = fit_sum_to_e2e(out, held)
    builds = [lut.extra.get("build") or {} for lut in luts]
    out.extra["build"] = {"elapsed_s": sum(b.get("elapsed_s", 0) for b in builds),
                          "networks_done": sum(b.get("networks_done", 0) for b in builds),
                          "merged": len(luts)}
    return out


def _observations(e: dict, field: str) -> list[float]:
    """An entry's in-context observations (``obs``, their ``refs`` and ``spreads``); an entry that kept
    none (tables written by hand, or before observations were kept) counts as one, taken quietly."""
    if "obs" not in e:
        return {"obs": [e["median_ms"]], "spreads": [e["spread_ms"]], "refs": [0.0]}[field]
    return list(e.get(field) or [0.0] * len(e["obs"]))


def info(lut: LUT) -> dict:
    """Provenance, coverage and error figures of a table (what ``lut info`` prints)."""
    n = len(lut.entries)
    measured = len(lut.measured_keys())
    total = lut.space.get("keys")
    spreads = [e["spread_ms"] / e["median_ms"] for e in lut.entries.values()
               if e["source"] == "measured" and e["median_ms"] > 0]
    p = lut.provenance
    return {
        "device": lut.device.get("name"), "backend": lut.device.get("backend"),
        "space": {k: lut.space.get(k) for k in ("family", "resolution", "num_classes", "in_channels", "small_input",
                                                 "multiple", "hash")},
        "provenance": {k: p.get(k) for k in ("host", "cpu", "cores", "gpu", "os", "python", "onnxruntime", "torch",
                                             "tensorrt", "threads", "precision", "date", "method", "prune_lut")
                       if p.get(k) is not None} | ({"merged_from": p["merged_from"]} if "merged_from" in p else {}),
        "protocol": p.get("protocol"),
        "coverage": {"entries": n, "measured": measured, "predicted": n - measured, "space_keys": total,
                     "complete": total is not None and n >= total, "shard": lut.extra.get("shard")},
        "median_rel_spread": float(np.median(spreads)) if spreads else None,
        "build": lut.extra.get("build"),
        "reference": None if lut.reference is None else {k: lut.reference.get(k) for k in
                                                         ("id", "median_ms", "first_ms", "last_ms")},
        "regressor": None if lut.regressor is None else {k: v for k, v in lut.regressor.items() if k != "features"},
        "sum_to_e2e": lut.extra.get("sum_to_e2e"),
        "calibration": lut.calibration,
        "frame": frame_of(lut),
    }
