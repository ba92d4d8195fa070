"""The search result (schema ``prune-lut.search/1``): built from an evolution, read back, exported.

``budgets``, ``devices``, ``seed``, ``settings``, ``top`` (rank, arch JSON, ``latency_ms`` per device,
``accuracy``, ``macs``, ``params``), ``pareto`` (per device: the accuracy vs latency front of
everything scored), ``uniform_baseline`` and ``gain_over_uniform``, ``evaluated``, ``history``,
timings, and with ``--verify`` ``verified``.
"""
from __future__ import annotations

import os
from dataclasses import asdict

from ... import schemas
from ...errors import ParamError, UserError
from ..arch import arch_from_dict, arch_to_dict, save_arch
from ..evolution import Evolution, EvolutionConfig, Scored, pareto_front
from ..space import ChannelSpace
from .budgets import Constraints
from .fitness import SearchTimes

RESULT_SCHEMA = "prune-lut.search/1"
Arch = dict[str, int]


def _entry(space: ChannelSpace, constraints: Constraints, arch: Arch, accuracy: float, **more) -> dict:
    return {**more, "accuracy": accuracy, "latency_ms": constraints.latencies(arch), "macs": space.macs(arch),
            "params": space.params(arch), "arch": arch_to_dict(space, arch)}


def build_result(space: ChannelSpace, constraints: Constraints, evo: Evolution, baseline: dict | None,
                 config: EvolutionConfig, meta: dict, history: list, elapsed_s: float, times: SearchTimes,
                 top_k: int) -> dict:
    """The result JSON object (schema ``prune-lut.search/1``)."""
    top = [_entry(space, constraints, s.arch, s.fitness, rank=i + 1, generation=s.generation)
           for i, s in enumerate(evo.top(top_k))]
    scored: list[Scored] = evo.scored
    evaluated = [{"latency_ms": constraints.latencies(s.arch), "accuracy": s.fitness, "macs": space.macs(s.arch),
                  "generation": s.generation} for s in scored]
    pareto = {}
    for dev in constraints.devices:
        idx = pareto_front([(e["latency_ms"][dev], e["accuracy"]) for e in evaluated])
        pareto[dev] = [_entry(space, constraints, scored[i].arch, scored[i].fitness) for i in idx]
    base = None
    if baseline is not None:
        arch = dict(zip(space.genes, baseline["genes"]))
        base = _entry(space, constraints, arch, baseline["accuracy"], ratio=baseline["ratio"])
    return {
        "schema": RESULT_SCHEMA,
        "space": {**space.describe(), "hash": space.hash},
        "devices": constraints.devices,
        "budgets": constraints.describe(),
        "seed": config.seed,
        "settings": asdict(config),
        **meta,
        "top": top,
        "uniform_baseline": base,
        "gain_over_uniform": (top[0]["accuracy"] - base["accuracy"]) if base and top else None,
        "pareto": pareto,
        "evaluated": evaluated,
        "history": history,
        "evaluations": len(scored),
        "rejected": evo.rejected,
        "elapsed_s": elapsed_s,
        "timing_s": {"evaluate_total": times.total_s, **times.parts_s},
    }




def load_result(path: str | os.PathLike) -> dict:
    """A search result JSON, checked against its schema (``schemas.SearchResult``)."""
    return schemas.load(path, "result")


def result_arch(result: dict, rank: int = 1, source: str = "result") -> tuple[ChannelSpace, Arch]:
    """(space, arch) of the ``rank``-th best arch (1 = best) of a search result."""
    top = result["top"]
    if not 1 <= rank <= len(top):
        raise UserError(f"{source}: --rank {rank} is out of range; the result holds {len(top)} archs (1..{len(top)})")
    return arch_from_dict(top[rank - 1]["arch"], source=f"{source} rank {rank}")


def export_result(result_path: str | os.PathLike, out: str | os.PathLike, rank: int | None = None, fmt: str = "onnx",
                  weights: str = "fresh", checkpoint: str | os.PathLike | None = None,
                  arch_out: str | os.PathLike | None = None) -> tuple[ChannelSpace, Arch, dict]:
    """Export the ``rank``-th arch of a search result: fresh weights, or the PruningNet's, BN recalibrated
    as the search's fitness did (its recalibration batches and seed, recorded in the result).

    ``rank`` None: the winner measured by ``search --verify`` where the result has one, else the best.
    Returns (space, arch, its entry in the result).
    """
    from ..export import export_arch

    result = load_result(result_path)
    if rank is None:
        rank = (result.get("verified") or {}).get("winner_rank") or 1
    space, arch = result_arch(result, rank, str(result_path))
    if weights == "pruningnet":
        ckpt = checkpoint or result.get("checkpoint")
        if not ckpt:
            raise UserError("--weights pruningnet needs --checkpoint CKPT (the PruningNet the search used)")
        from ..scoring import GeneratedNets
        from .run import pruningnet_checkpoint

        ck = pruningnet_checkpoint(ckpt)
        if ck.space.hash != space.hash:
            raise UserError(f"{ckpt}: the checkpoint covers another space than {result_path}; "
                            "give the checkpoint the search used")
        fit = result.get("fitness") or {}
        net = GeneratedNets(ck.pruningnet, ck.load_data(), fit.get("recal_batches"), fit.get("recal_batch_size"),
                            result.get("seed", 0)).network(arch)
    elif weights == "fresh":
        net = None
    else:
        raise ParamError("weights", f"must be pruningnet or fresh, got {weights!r}")
    export_arch(out, space, arch, net, fmt)
    if arch_out:
        save_arch(arch_out, space, arch)
    return space, arch, result["top"][rank - 1]
