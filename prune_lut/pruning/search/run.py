"""The search run: the evolution under the budgets, its state checkpointed each generation, the result.

:func:`run_search` is independent of where the fitness comes from; :func:`search_checkpoint` (what
``prune-lut search`` runs) scores archs with a checkpoint's PruningNet (:mod:`.fitness`). Files: the
result JSON (:mod:`.result`) and, beside it, a state file ``<result>.state.json`` rewritten
atomically after every generation, from which ``resume`` continues to the same result.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

from ... import schemas
from ...errors import UserError
from ...files import write_json
from ..evolution import Evolution, EvolutionConfig
from ..space import ChannelSpace
from .budgets import Constraints, LatencyBudget, load_budgets, uniform_baseline
from .fitness import PruningNetFitness, SearchTimes, split_over_ranks
from .paired import paired_margin
from .result import build_result

log = logging.getLogger(__name__)
Arch = dict[str, int]


class Verifier(Protocol):
    """Measures a search's best archs on its budget devices (``tables.verify.Verifier``).

    ``prepare(budgets)`` runs before the search (a device that cannot be measured is refused before
    any evaluation); ``verify(result, space)`` returns the result's ``verified`` record."""

    def prepare(self, budgets: list[LatencyBudget]) -> None: ...

    def verify(self, result: dict, space: ChannelSpace) -> dict: ...


def state_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".json") + ".state.json")


START_OVER = "pass --force (without --resume) to start the search over"


def _load_state(spath: Path, resume: bool, fingerprint: dict, config: EvolutionConfig,
                force: bool = False) -> dict | None:
    """The interrupted search's state when resuming it; refused when it is another search, or when
    it is there and the caller neither resumes it nor starts over (``force``: ignored, replaced)."""
    if resume and force:
        raise UserError("give --resume (continue the search) or --force (start it over), not both")
    if force or not (spath.exists() or spath.is_symlink()):
        if resume:
            log.warning("--resume: no state at %s, starting a new search", spath)
        return None
    state = schemas.load(spath, "state")
    if not resume:
        raise UserError(f"{spath}: a search state is there (generation {state['evolution']['generation']}"
                        f"/{config.generations}); pass --resume to continue it, or {START_OVER}")
    if state["fingerprint"] != fingerprint:
        old = state["fingerprint"]
        diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        raise UserError(f"--resume: this search differs from the interrupted one in {', '.join(diff)}; "
                        f"use the same options, or {START_OVER}")
    return state


def run_search(space: ChannelSpace, constraints: Constraints, fitness: Callable[[list[Arch]], list[float]],
               config: EvolutionConfig, out: str | os.PathLike, *, resume: bool = False,
               meta: dict | None = None, times: SearchTimes | None = None, top_k: int | None = None,
               progress: Callable[[str], None] | None = None, write: bool = True,
               stop_after: int | None = None, force: bool = False) -> dict:
    """Run (or resume) the evolution under ``constraints`` and write the result JSON to ``out``.

    ``fitness`` scores a batch of archs (accuracy in [0, 1]); ``meta`` goes into the result and is
    checked on ``resume`` (another checkpoint or budget refuses to resume). ``write`` False on
    non-zero ranks of a multi-process search. ``stop_after`` ends after that many generations of
    this call (an interruption, for tests; returns {}). ``force`` starts over: an interrupted
    search's state is ignored and replaced. Returns the result dict.
    """
    constraints.check_reachable()
    times = times or SearchTimes()
    meta = dict(meta or {})
    fingerprint = {"space_hash": space.hash, "budgets": constraints.describe(), **meta}
    spath = state_path(out)
    ub = uniform_baseline(space, constraints)
    # The uniform arch seeds the population: the search cannot return an arch its fitness ranks lower.
    evo = Evolution({n: g.choices for n, g in space.genes.items()}, fitness, constraints.feasible, config,
                    seeds=[ub[1]] if ub else ())
    state = _load_state(spath, resume, fingerprint, config, force)
    if state is not None:
        try:
            evo.load_state(state["evolution"])
            for s in evo.scored:  # widths off this space's grid would be priced by no table entry
                space.check_arch(s.arch)
        except UserError as e:
            raise UserError(f"{spath}: {e}; {START_OVER}") from None
        baseline, history = state.get("baseline"), list(state.get("history", []))  # None: no uniform arch fits
        elapsed0 = float(state.get("elapsed_s", 0.0))
        log.info("resuming %s at generation %d/%d", spath, evo.generation, config.generations)
    else:
        elapsed0, history, baseline = 0.0, [], None
        if ub is not None:
            ratio, arch = ub
            baseline = {"ratio": ratio, "genes": list(space.vector(arch)), "accuracy": float(fitness([arch])[0])}
    t0 = time.perf_counter()
    last = [t0]

    def on_generation(evo: Evolution, new: list) -> None:
        now = time.perf_counter()
        dt, last[0] = now - last[0], now
        best = evo.top(1)[0]
        lat = constraints.latencies(best.arch)
        dev = constraints.devices[0]
        history.append({"generation": evo.generation, "best_accuracy": best.fitness, "best_latency_ms": lat,
                        "new": len(new), "seconds": dt, "evals_per_s": len(new) / dt if dt > 0 else None})
        if write:
            write_json(spath, {"fingerprint": fingerprint, "evolution": evo.state(), "baseline": baseline,
                               "history": history, "elapsed_s": elapsed0 + now - t0})
        if progress:
            rec = times.parts_s.get("recalibrate", 0.0) / times.total_s if times.total_s else 0.0
            progress(f"gen {evo.generation:>3}/{config.generations}: best {best.fitness:.2%} at {lat[dev]:.4g} ms "
                     f"({dev}); {len(new)} new archs, {len(new) / max(dt, 1e-9):.1f} evals/s"
                     + (f", BN recal {rec:.0%} of eval time" if times.total_s else ""))

    evo.run(on_generation, stop_after)
    if not evo.done:
        return {}
    result = build_result(space, constraints, evo, baseline, config, meta, history,
                          elapsed0 + time.perf_counter() - t0, times, top_k or config.parents)
    if write:
        write_json(out, result)
    return result


def pruningnet_checkpoint(checkpoint: str | os.PathLike):
    """A ``prune-lut train`` checkpoint, refused when it holds a plain network."""
    from ..train import load_checkpoint

    ck = load_checkpoint(checkpoint)
    if ck.kind != "pruningnet":
        raise UserError(f"{checkpoint} is a {ck.kind} checkpoint; search needs a PruningNet (`prune-lut train`)")
    return ck


def search_checkpoint(checkpoint: str | os.PathLike, luts: Sequence[str], latency_ms: Sequence[float],
                      config: EvolutionConfig, out: str | os.PathLike, *, macs_m: float | None = None,
                      resume: bool = False, plot: str | os.PathLike | None = None, recal_batches: int | None = None,
                      recal_batch_size: int | None = None, top_k: int | None = None, threads: int = 1,
                      progress: Callable[[str], None] | None = None, stop_after: int | None = None,
                      verifier: Verifier | None = None, force: bool = False, processes: int = 1) -> dict:
    """Search the space of ``checkpoint`` under the budgets; under torchrun, ranks share the evaluations.

    ``threads``: torch threads per process while scoring. One by default: the candidate networks
    are small, their time goes to per-operator overhead, and a second OpenMP thread on a busy
    2-core machine made BN recalibration up to 100x slower (docs/BENCHMARKS.md); use processes
    (``processes`` local ones, or torchrun's) to use more cores: the same result, in about 1/N of
    the time. Writes ``out`` (and ``plot``) on rank 0 and returns the result (an empty dict on other
    ranks). ``verifier`` measures the best archs on the budget devices afterwards (rank 0, the
    others waiting) and adds ``verified`` to the result. ``resume`` continues the interrupted search
    beside ``out``, ``force`` starts over (see :func:`run_search`).
    """
    import torch

    from ..distributed import in_process_group, setup, spawn
    from ..scoring import GeneratedNets
    from .plot import plot_result

    if processes > 1 and not in_process_group():
        kwargs = dict(macs_m=macs_m, resume=resume, plot=plot, recal_batches=recal_batches,
                      recal_batch_size=recal_batch_size, top_k=top_k, threads=threads, stop_after=stop_after,
                      verifier=verifier, force=force)
        return spawn(_search_rank, (checkpoint, luts, latency_ms, config, out, kwargs), processes, progress) or {}

    dist = setup("cpu")
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        times = SearchTimes()
        ck = pruningnet_checkpoint(checkpoint)
        space = ck.space
        constraints = Constraints(space, load_budgets(space, luts, latency_ms),
                                  None if macs_m is None else macs_m * 1e6)
        constraints.check_reachable()  # before the data is loaded: an impossible budget is answered at once
        if verifier is not None and dist.main:
            verifier.prepare(constraints.budgets)
        fit = PruningNetFitness(GeneratedNets(ck.pruningnet, ck.load_data(), recal_batches, recal_batch_size,
                                              config.seed), times)
        meta = {"checkpoint": str(checkpoint), "fitness": fit.describe()}
        result = run_search(space, constraints, split_over_ranks(fit), config, out, resume=resume, meta=meta,
                            times=times, top_k=top_k, progress=progress if dist.main else None,
                            write=dist.main, stop_after=stop_after, force=force)
        if dist.main and result and result["uniform_baseline"]:
            best, base = (space.check_arch(e["arch"]["genes"]) for e in (result["top"][0], result["uniform_baseline"]))
            # on the test split: the sub-val split chose the best, so its margin there is inflated
            result["uniform_test"] = paired_margin(fit.nets.hits(best, "test"), fit.nets.hits(base, "test"))
            write_json(out, result)
        if dist.main and verifier is not None and result:
            result["verified"] = verifier.verify(result, space)
            write_json(out, result)
        if dist.main and plot and result:
            plot_result(result, plot)
        dist.barrier()
        return result if dist.main else {}
    finally:
        torch.set_num_threads(saved_threads)


def _search_rank(checkpoint, luts, latency_ms, config, out, kwargs: dict, say) -> dict:
    """One of :func:`search_checkpoint`'s local processes (``distributed.spawn``)."""
    return search_checkpoint(checkpoint, luts, latency_ms, config, out, progress=say, **kwargs)
