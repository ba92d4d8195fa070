"""Search wiring: budgets from lookup tables, a fitness, the evolution, the result file and its plot.

:func:`run_search` is independent of where the fitness comes from; :mod:`.search_fitness`
supplies the real one (PruningNet-generated networks after BatchNorm recalibration, scored on the
checkpoint's held-out sub-validation split). Budgets: one latency limit per lookup table (one table
per device, predicted with its calibration when it has one) and an optional MACs limit.

Files: the result JSON (schema ``prune-lut.search/1``, below) and, beside it, a state file
``<result>.state.json`` rewritten atomically after every generation, from which ``resume`` continues.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import UserError
from ..latency.lutfile import LUT
from ..latency.predictor import Predictor
from .arch import arch_to_dict, read_json, write_json_atomic
from .evolution import Evolution, EvolutionConfig, Scored, pareto_front
from .space import ChannelSpace

log = logging.getLogger(__name__)

RESULT_SCHEMA = "prune-lut.search/1"
Arch = dict[str, int]


# ---- budgets ------------------------------------------------------------------------------
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
                "lut_date": (lut.provenance or {}).get("date")}


def load_budgets(space: ChannelSpace, luts: Sequence[str], latency_ms: Sequence[float]) -> list[LatencyBudget]:
    """One budget per (LUT file, limit) pair; each table must cover ``space``."""
    if len(luts) != len(latency_ms):
        raise UserError(f"give one --latency-ms per --lut ({len(luts)} tables, {len(latency_ms)} limits)")
    if not luts:
        raise UserError("give at least one --lut FILE --latency-ms MS (the device's lookup table and its budget)")
    out, names = [], set()
    for path, ms in zip(luts, latency_ms):
        if not ms > 0:
            raise UserError(f"--latency-ms must be > 0, got {ms}")
        lut = LUT.load(path, space_hash=space.hash)
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


# ---- multi-process evaluation -------------------------------------------------------------
def split_over_ranks(score: Callable[[list[Arch]], list[float]]) -> Callable[[list[Arch]], list[float]]:
    """Wrap a batch fitness so each torch.distributed rank scores its share (archs[rank::world]).

    Every rank runs the same (seeded) evolution and so asks for the same batch; the scores are
    gathered to all ranks in the original order, so the search goes on identically everywhere.
    Without an initialized process group this is ``score`` itself.
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return score

    def wrapped(archs: list[Arch]) -> list[float]:
        rank, world = dist.get_rank(), dist.get_world_size()
        mine = score(archs[rank::world]) if archs[rank::world] else []
        parts: list = [None] * world
        dist.all_gather_object(parts, list(mine))
        out = [0.0] * len(archs)
        for r, p in enumerate(parts):
            out[r::world] = p
        return out

    return wrapped


# ---- the real fitness: PruningNet-generated networks ---------------------------------------
class PruningNetFitness:
    """Top-1 on the held-out sub-validation split of the PruningNet's network for an arch.

    Each arch's network is generated, its BatchNorm recalibrated (running statistics reset, then
    ``recal_batches`` sub-train batches forwarded in train mode without gradients) and scored;
    results are cached per arch. The recalibration batches are drawn once (seeded) and reused for
    every arch, so a score depends on the arch alone: on whichever process it is computed.
    """

    def __init__(self, pruningnet, data, recal_batches: int = 4, batch_size: int = 128, seed: int = 0,
                 times: SearchTimes | None = None):
        from itertools import islice

        from .data import cycle_batches

        if recal_batches < 1 or batch_size < 1:
            raise UserError("--recal-batches and --recal-batch-size must be >= 1")
        self.pruningnet = pruningnet.eval()
        self.space: ChannelSpace = pruningnet.space
        self.data = data
        self.recal = [x for x, _ in islice(cycle_batches(data.train, batch_size, seed), recal_batches)]
        if not self.recal:  # fewer sub-train images than one batch
            self.recal = [data.train.x[:batch_size]] if hasattr(data.train, "x") else []
        self.batch_size = batch_size
        self.times = times or SearchTimes()
        self.cache: dict[tuple, float] = {}

    def describe(self) -> dict:
        return {"recal_batches": len(self.recal), "recal_batch_size": self.batch_size,
                "sub_val_images": len(self.data.val), "data": self.data.spec}

    def network(self, arch: Arch):
        """The generated network for ``arch`` with recalibrated BatchNorm (eval mode): what is scored."""
        from .bn import recalibrate_bn  # (imported late: torch is only needed once a network is scored)

        t0 = time.perf_counter()
        net = self.pruningnet.generate(arch)
        t1 = time.perf_counter()
        recalibrate_bn(net, self.recal, len(self.recal))
        t2 = time.perf_counter()
        parts = self.times.parts_s
        parts["generate"] = parts.get("generate", 0.0) + t1 - t0
        parts["recalibrate"] = parts.get("recalibrate", 0.0) + t2 - t1
        return net

    def score(self, arch: Arch) -> float:
        from .train import evaluate

        key = self.space.vector(arch)
        if key in self.cache:
            return self.cache[key]
        t0 = time.perf_counter()
        net = self.network(arch)
        t1 = time.perf_counter()
        acc = evaluate(net, self.data.val, self.batch_size * 4)
        t2 = time.perf_counter()
        self.times.parts_s["evaluate"] = self.times.parts_s.get("evaluate", 0.0) + t2 - t1
        self.times.total_s += t2 - t0
        self.times.evaluations += 1
        self.cache[key] = acc
        return acc

    def __call__(self, archs: list[Arch]) -> list[float]:
        return [self.score(a) for a in archs]


# ---- the search ---------------------------------------------------------------------------
@dataclass
class SearchTimes:
    """Where evaluation time went (filled by the fitness, read for progress lines and the result)."""

    evaluations: int = 0
    total_s: float = 0.0
    parts_s: dict[str, float] = field(default_factory=dict)  # e.g. generate / recalibrate / evaluate


def state_path(out: str | os.PathLike) -> Path:
    out = Path(out)
    return out.with_name(out.name.removesuffix(".json") + ".state.json")


def run_search(space: ChannelSpace, constraints: Constraints, fitness: Callable[[list[Arch]], list[float]],
               config: EvolutionConfig, out: str | os.PathLike, *, resume: bool = False,
               meta: dict | None = None, times: SearchTimes | None = None, top_k: int | None = None,
               progress: Callable[[str], None] | None = None, write: bool = True,
               stop_after: int | None = None) -> dict:
    """Run (or resume) the evolution under ``constraints`` and write the result JSON to ``out``.

    ``fitness`` scores a batch of archs (accuracy in [0, 1]); ``meta`` goes into the result and is
    checked on ``resume`` (another checkpoint or budget refuses to resume). ``write`` False on
    non-zero ranks of a multi-process search. ``stop_after`` ends after that many generations of
    this call (an interruption, for tests). Returns the result dict.
    """
    constraints.check_reachable()
    times = times or SearchTimes()
    meta = dict(meta or {})
    fingerprint = {"space_hash": space.hash, "budgets": constraints.describe(), **meta}
    spath = state_path(out)
    evo = Evolution({n: g.choices for n, g in space.genes.items()}, fitness, constraints.feasible, config)

    state = None
    if spath.exists():
        if not resume:
            st = read_json(spath)
            raise UserError(f"{spath}: a search state is there (generation {st.get('evolution', {}).get('generation')}"
                            f"/{config.generations}); pass --resume to continue it, or delete it to start over")
        state = read_json(spath)
        if not isinstance(state, dict) or "evolution" not in state:
            raise UserError(f"{spath}: damaged search state; delete it to start over")
        if state.get("fingerprint") != fingerprint:
            old = state.get("fingerprint") or {}
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise UserError(f"--resume: this search differs from the interrupted one in {', '.join(diff)}; "
                            "use the same options or delete the state file to start over")
        evo.load_state(state["evolution"])
        baseline = state["baseline"]
        elapsed0 = float(state.get("elapsed_s", 0.0))
        history = list(state.get("history", []))
        log.info("resuming %s at generation %d/%d", spath, evo.generation, config.generations)
    elif resume:
        log.warning("--resume: no state at %s, starting a new search", spath)

    t0 = time.perf_counter()
    if state is None:
        elapsed0, history = 0.0, []
        ub = uniform_baseline(space, constraints)
        baseline = None
        if ub is not None:
            ratio, arch = ub
            acc = fitness([arch])[0]
            baseline = {"ratio": ratio, "genes": list(space.vector(arch)), "accuracy": float(acc)}

    def save_state() -> None:
        if write:
            write_json_atomic(spath, {"fingerprint": fingerprint, "evolution": evo.state(), "baseline": baseline,
                                      "history": history, "elapsed_s": elapsed0 + time.perf_counter() - t0})

    steps = 0
    while not evo.done and (stop_after is None or steps < stop_after):
        n0, s0 = times.evaluations, time.perf_counter()
        new = evo.step()
        steps += 1
        dt = time.perf_counter() - s0
        best = evo.top(1)[0]
        lat = constraints.latencies(best.arch)
        dev = constraints.devices[0]
        line = {"generation": evo.generation, "best_accuracy": best.fitness, "best_latency_ms": lat,
                "new": len(new), "seconds": dt, "evals_per_s": len(new) / dt if dt > 0 else None}
        history.append(line)
        save_state()
        if progress:
            rec = times.parts_s.get("recalibrate", 0.0) / times.total_s if times.total_s else 0.0
            progress(f"gen {evo.generation:>3}/{config.generations}: best {best.fitness:.2%} at {lat[dev]:.4g} ms "
                     f"({dev}); {len(new)} new archs, {len(new) / max(dt, 1e-9):.1f} evals/s"
                     + (f", BN recal {rec:.0%} of eval time" if times.total_s else ""))
        log.debug("generation %d: %d evaluations total", evo.generation, times.evaluations - n0)
    if not evo.done:
        return {}
    result = build_result(space, constraints, evo, baseline, config, meta, history,
                          elapsed0 + time.perf_counter() - t0, times, top_k or config.parents)
    if write:
        write_json_atomic(out, result)
    return result


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


# ---- from a checkpoint: what `prune-lut search` runs ------------------------------------------
def load_fitness(checkpoint: str | os.PathLike, recal_batches: int = 4, recal_batch_size: int = 128,
                 seed: int = 0, times: SearchTimes | None = None) -> PruningNetFitness:
    """The PruningNet of ``checkpoint`` with its own data split (sub-train for BN, sub-val to score)."""
    ck = _pruningnet_checkpoint(checkpoint)
    return PruningNetFitness(ck.pruningnet, ck.load_data(), recal_batches, recal_batch_size, seed, times)


def _pruningnet_checkpoint(checkpoint: str | os.PathLike):
    from .train import load_checkpoint

    ck = load_checkpoint(checkpoint)
    if ck.pruningnet is None:
        raise UserError(f"{checkpoint} is a {ck.kind} checkpoint; search needs a PruningNet (`prune-lut train`)")
    return ck


def search_checkpoint(checkpoint: str | os.PathLike, luts: Sequence[str], latency_ms: Sequence[float],
                      config: EvolutionConfig, out: str | os.PathLike, *, macs_m: float | None = None,
                      resume: bool = False, plot: str | os.PathLike | None = None, recal_batches: int = 4,
                      recal_batch_size: int = 128, top_k: int | None = None, threads: int = 1,
                      progress: Callable[[str], None] | None = None, stop_after: int | None = None,
                      verify: int = 0, host: tuple[str, ...] | str | None = None) -> dict:
    """Search the space of ``checkpoint`` under the budgets; under torchrun, ranks share the evaluations.

    ``threads``: torch threads per process while scoring. One by default: the candidate networks
    are small, their time goes to per-operator overhead, and a second OpenMP thread on a busy
    2-core machine made BN recalibration up to 100x slower here (0.12 s vs 13 s per arch); use
    torchrun processes to use more cores. Writes ``out`` (and ``plot``) on rank 0 and returns the
    result (an empty dict on other ranks). ``verify`` > 0 measures that many of the best archs on
    the budget devices afterwards (a board's over ssh: ``host``) and adds ``verified`` to the
    result (:mod:`.verify`).
    """
    import torch

    from .distributed import setup

    dist = setup("cpu")
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        return _search_checkpoint(dist, checkpoint, luts, latency_ms, config, out, macs_m, resume, plot,
                                  recal_batches, recal_batch_size, top_k, progress, stop_after, verify, host)
    finally:
        torch.set_num_threads(saved_threads)


def _search_checkpoint(dist, checkpoint, luts, latency_ms, config, out, macs_m, resume, plot, recal_batches,
                       recal_batch_size, top_k, progress, stop_after, verify, host) -> dict:
    from .verify import budget_meters, verify_result

    times = SearchTimes()
    ck = _pruningnet_checkpoint(checkpoint)
    space = ck.space
    constraints = Constraints(space, load_budgets(space, luts, latency_ms),
                              None if macs_m is None else macs_m * 1e6)
    constraints.check_reachable()  # before the data is loaded: an impossible budget is answered at once
    if verify < 0:
        raise UserError(f"--verify must be >= 0 (0: no measurement), got {verify}")
    meters = budget_meters(constraints.budgets, host) if verify and dist.main else None
    fit = PruningNetFitness(ck.pruningnet, ck.load_data(), recal_batches, recal_batch_size, config.seed, times)
    meta = {"checkpoint": str(checkpoint), "fitness": fit.describe()}
    result = run_search(space, constraints, split_over_ranks(fit), config, out, resume=resume, meta=meta,
                        times=times, top_k=top_k, progress=progress if dist.main else None,
                        write=dist.main, stop_after=stop_after)
    if dist.main and verify and result:
        result["verified"] = verify_result(result, space, verify, meters)
        write_json_atomic(out, result)
    if dist.main and plot and result:
        plot_result(result, plot)
    dist.barrier()
    return result if dist.main else {}


def export_result(result_path: str | os.PathLike, out: str | os.PathLike, rank: int | None = None, fmt: str = "onnx",
                  weights: str = "fresh", checkpoint: str | os.PathLike | None = None,
                  arch_out: str | os.PathLike | None = None, recal_batches: int = 4,
                  recal_batch_size: int = 128, seed: int = 0) -> tuple[ChannelSpace, Arch, dict]:
    """Export the ``rank``-th arch of a search result: fresh weights, or the PruningNet's (BN recalibrated).

    ``rank`` None: the winner measured by ``search --verify`` where the result has one, else the best.
    Returns (space, arch, its entry in the result).
    """
    from .arch import save_arch
    from .export import save_onnx, save_torch
    from .net import build_net

    result = load_result(result_path)
    if rank is None:
        rank = (result.get("verified") or {}).get("winner_rank") or 1
    space, arch = result_arch(result, rank, str(result_path))
    if weights == "pruningnet":
        ckpt = checkpoint or result.get("checkpoint")
        if not ckpt:
            raise UserError("--weights pruningnet needs --checkpoint CKPT (the PruningNet the search used)")
        fit = load_fitness(ckpt, recal_batches, recal_batch_size, seed)
        if fit.space.hash != space.hash:
            raise UserError(f"{ckpt}: the checkpoint covers another space than {result_path}; "
                            "give the checkpoint the search used")
        net = fit.network(arch)
    elif weights == "fresh":
        net = build_net(space, arch).eval()
    else:
        raise UserError(f"--weights must be pruningnet or fresh, got {weights!r}")
    (save_onnx if fmt == "onnx" else save_torch)(out, space, net)
    if arch_out:
        save_arch(arch_out, space, arch)
    return space, arch, result["top"][rank - 1]


# ---- reading results back -----------------------------------------------------------------
def load_result(path: str | os.PathLike) -> dict:
    """A search result JSON, checked for its schema."""
    d = read_json(path)
    if not isinstance(d, dict) or d.get("schema") != RESULT_SCHEMA or not isinstance(d.get("top"), list):
        raise UserError(f"{path}: not a prune-lut search result (schema {RESULT_SCHEMA}); "
                        "give the file `prune-lut search --out` wrote")
    return d


def result_arch(result: dict, rank: int = 1, source: str = "result") -> tuple[ChannelSpace, Arch]:
    """(space, arch) of the ``rank``-th best arch (1 = best) of a search result."""
    from .arch import arch_from_dict

    top = result["top"]
    if not 1 <= rank <= len(top):
        raise UserError(f"{source}: --rank {rank} is out of range; the result holds {len(top)} archs (1..{len(top)})")
    return arch_from_dict(top[rank - 1]["arch"], source=f"{source} rank {rank}")


# ---- plot ---------------------------------------------------------------------------------
def plot_result(result: dict, path: str | os.PathLike, device: str | None = None) -> None:
    """PNG: every arch evaluated (accuracy vs predicted latency), the Pareto front, budget, baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dev = device or result["devices"][0]
    ev = result["evaluated"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    sc = ax.scatter([e["latency_ms"][dev] for e in ev], [100 * e["accuracy"] for e in ev],
                    c=[e["generation"] for e in ev], cmap="viridis", s=10, alpha=0.7, label="evaluated")
    fig.colorbar(sc, ax=ax, label="generation")
    pf = result["pareto"][dev]
    ax.step([e["latency_ms"][dev] for e in pf], [100 * e["accuracy"] for e in pf], where="post",
            color="tab:red", lw=1.5, label="Pareto front")
    budget = next(b["latency_ms"] for b in result["budgets"]["latency"] if b["device"] == dev)
    ax.axvline(budget, color="k", ls="--", lw=1, label=f"budget {budget:g} ms")
    best = result["top"][0]
    ax.scatter([best["latency_ms"][dev]], [100 * best["accuracy"]], marker="*", s=180, color="tab:red",
               edgecolor="k", zorder=5, label="best")
    base = result.get("uniform_baseline")
    if base:
        ax.scatter([base["latency_ms"][dev]], [100 * base["accuracy"]], marker="D", s=60, color="tab:orange",
                   edgecolor="k", zorder=5, label=f"uniform x{base['ratio']:g}")
    ax.set_xlabel(f"predicted latency on {dev} (ms)")
    ax.set_ylabel("top-1 on sub-validation (%)")
    ax.set_title(f"search: {result['space']['family']}, {result['evaluations']} archs, seed {result['seed']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
