"""The MetaPruning evolutionary search, generic over genes and callbacks.

Liu et al. (ICCV 2019), section 3.3 and their reference ``search.py``: a random initial population
that meets the constraints; each generation keeps the best ``parents`` archs seen so far (the
elite survives because it stays in that top-k memory), makes half the next population by mutation
(each gene, or each group of tied genes, takes a random choice with probability ``mutation_prob``)
and half by uniform crossover of two top-k parents, and fills up with random archs. Duplicates of
anything already seen and archs that fail the constraint are rejected before evaluation.
``seeds`` (the search passes the widest uniform arch under the budget) join the initial population,
so the result is never an arch the fitness ranks below them, and mutation explores around them.

One departure from the reference: random archs are drawn *by level* (:meth:`Evolution.level_arch`),
not gene by gene uniformly. With 25 independent uniform genes an arch's size concentrates near the
middle of the space (central limit): on the 14x14 quickstart space 400 uniform draws were all
predicted between 30% and 65% of the full net's latency (90% at 35-56%), and a 70% budget's
search never evaluated an arch in the last fifth of its budget (docs/BENCHMARKS.md). Drawing a level first
and the genes around it spreads the population over every size the budget admits.

Nothing here knows about networks: an arch is ``{gene: choice}``, ``fitness`` scores a batch of
archs (so the caller can cache, batch or split them over processes), ``feasible`` says whether an
arch meets every budget. The state (random generator, every scored arch in order, generation)
is plain JSON, so a search can be checkpointed each generation and resumed to the same result.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from ..errors import ParamError, UserError

log = logging.getLogger(__name__)

Arch = dict[str, int]
STATE_SCHEMA = "prune-lut.evolution/1"
LEVEL_WIDTH = 0.5  # share of a gene's choices a random arch draws from, around its level


def level_draw(rng: random.Random, ascending: Sequence[Sequence[int]], width: float = LEVEL_WIDTH,
               t: float | None = None) -> list[int]:
    """One choice per gene around a random size: a level ``t`` in [0, 1] (uniform unless given), then each
    gene draws uniformly among its choices (``ascending``: smallest first) whose rank lies within ``width / 2``
    of ``t``."""
    t = rng.random() if t is None else t
    out = []
    for ch in ascending:
        lo = min(len(ch) - 1, max(0, int((t - width / 2) * len(ch))))
        hi = min(len(ch), max(lo + 1, math.ceil((t + width / 2) * len(ch))))
        out.append(ch[rng.randrange(lo, hi)])
    return out


@dataclass(frozen=True)
class EvolutionConfig:
    population: int = 50
    generations: int = 20
    parents: int = 10
    mutation_prob: float = 0.1
    seed: int = 0
    max_tries: int = 200  # candidate draws per wanted arch before a generation gives up on filling

    def check(self) -> None:
        if self.population < 2:
            raise ParamError("population", f"must be >= 2, got {self.population}")
        if self.generations < 1:
            raise ParamError("generations", f"must be >= 1, got {self.generations}")
        if not 1 <= self.parents <= self.population:
            raise ParamError("parents", f"must lie in 1..population ({self.population}), got {self.parents}")
        if not 0 <= self.mutation_prob <= 1:
            raise ParamError("mutation_prob", f"must lie in [0, 1], got {self.mutation_prob}")


@dataclass
class Scored:
    arch: Arch
    fitness: float
    generation: int


class Evolution:
    """One evolutionary search. ``run()`` to the end, or ``step()`` one generation at a time.

    ``genes``: {name: allowed choices}. ``tied``: groups of gene names that always carry the same
    choice (they mutate, cross over and are sampled together; their choices must be equal).
    ``fitness(archs) -> scores`` (higher is better), ``feasible(arch) -> bool``. ``seeds``: archs the
    first generation evaluates before its random ones (infeasible or repeated ones are dropped).
    """

    def __init__(self, genes: dict[str, Sequence[int]], fitness: Callable[[list[Arch]], list[float]],
                 feasible: Callable[[Arch], bool], config: EvolutionConfig,
                 tied: Sequence[Sequence[str]] = (), seeds: Sequence[Arch] = ()):
        config.check()
        self.genes = {n: tuple(c) for n, c in genes.items()}
        self.seeds = [self._ordered(a) for a in seeds]
        self.fitness, self.feasible, self.config = fitness, feasible, config
        grouped: set[str] = set()
        self.groups: list[tuple[str, ...]] = []
        for g in tied:
            g = tuple(g)
            if any(n not in self.genes for n in g) or grouped & set(g):
                raise ValueError(f"tied group {g} names an unknown gene or a gene already tied")
            if len({self.genes[n] for n in g}) != 1:
                raise ValueError(f"tied genes {g} must have the same choices")
            grouped |= set(g)
            self.groups.append(g)
        self.groups += [(n,) for n in self.genes if n not in grouped]
        self._ascending = {g: sorted(self.genes[g[0]]) for g in self.groups}  # level draws rank choices
        self.rng = random.Random(config.seed)
        self.generation = 0
        self.scored: list[Scored] = []  # every evaluated arch, in evaluation order
        self._seen: dict[tuple, int] = {}  # vector -> index in scored
        self.rejected = {"duplicate": 0, "infeasible": 0}

    # ---- arch helpers ---------------------------------------------------------------------
    def key(self, arch: Arch) -> tuple[int, ...]:
        return tuple(arch[n] for n in self.genes)

    def _ordered(self, arch: Arch) -> Arch:
        return {n: arch[n] for n in self.genes}

    def random_arch(self, cap: float = 1.0) -> Arch:
        """Each group draws uniformly among its choices; ``cap`` < 1 keeps to the lowest share of them."""
        arch: Arch = {}
        for g in self.groups:
            ch = self.genes[g[0]]
            v = ch[self.rng.randrange(max(1, math.ceil(len(ch) * cap)))]
            arch.update(dict.fromkeys(g, v))
        return self._ordered(arch)

    def level_arch(self, width: float = LEVEL_WIDTH) -> Arch:
        """A random arch around a random size (:func:`level_draw`), tied genes drawn once."""
        arch: Arch = {}
        for g, v in zip(self.groups, level_draw(self.rng, [self._ascending[g] for g in self.groups], width)):
            arch.update(dict.fromkeys(g, v))
        return self._ordered(arch)

    def mutate(self, parent: Arch) -> Arch:
        child = dict(parent)
        for g in self.groups:
            if self.rng.random() < self.config.mutation_prob:
                child.update(dict.fromkeys(g, self.rng.choice(self.genes[g[0]])))
        return child

    def crossover(self, a: Arch, b: Arch) -> Arch:
        child: Arch = {}
        for g in self.groups:
            src = a if self.rng.random() < 0.5 else b
            child.update({n: src[n] for n in g})
        return self._ordered(child)

    # ---- population -----------------------------------------------------------------------
    def top(self, k: int | None = None) -> list[Scored]:
        """Best first; ties go to the arch evaluated first (deterministic)."""
        order = sorted(range(len(self.scored)), key=lambda i: (-self.scored[i].fitness, i))
        return [self.scored[i] for i in order[:k]]

    def _accept(self, arch: Arch, batch: dict[tuple, Arch]) -> bool:
        k = self.key(arch)
        if k in self._seen or k in batch:
            self.rejected["duplicate"] += 1
            return False
        if not self.feasible(arch):
            self.rejected["infeasible"] += 1
            return False
        batch[k] = arch
        return True

    def _fill(self, make: Callable[[], Arch], want: int, batch: dict[tuple, Arch]) -> int:
        got, tries = 0, 0
        while got < want and tries < want * self.config.max_tries:
            tries += 1
            got += self._accept(make(), batch)
        return got

    def candidates(self) -> list[Arch]:
        """The next generation's new archs (feasible, never seen before)."""
        cfg, batch = self.config, {}
        if self.scored:
            parents = [s.arch for s in self.top(cfg.parents)]
            self._fill(lambda: self.mutate(self.rng.choice(parents)), cfg.population // 2, batch)
            if len(parents) > 1:
                self._fill(lambda: self.crossover(*self.rng.sample(parents, 2)), cfg.population // 2, batch)
        else:
            for arch in self.seeds[:cfg.population]:
                self._accept(arch, batch)
        want = cfg.population - len(batch)
        got = self._fill(self.level_arch, want, batch)
        if got < want:
            # Tight budgets: uniform sampling rarely lands under them, so draw from the narrow end too.
            self._fill(lambda: self.random_arch(cap=self.rng.random()), want - got, batch)
        return list(batch.values())

    def step(self) -> list[Scored]:
        """Run one generation: make candidates, score them, remember them. Returns the new ones."""
        cands = self.candidates()
        if not cands and not self.scored:
            raise UserError("no architecture meets the budgets among "
                            f"{self.config.population * self.config.max_tries * 2} random draws; relax the budget")
        scores = list(self.fitness(cands)) if cands else []
        if len(scores) != len(cands):
            raise RuntimeError(f"fitness returned {len(scores)} scores for {len(cands)} archs")
        new = []
        for a, f in zip(cands, scores):
            self._seen[self.key(a)] = len(self.scored)
            s = Scored(a, float(f), self.generation)
            self.scored.append(s)
            new.append(s)
        self.generation += 1
        return new

    @property
    def done(self) -> bool:
        return self.generation >= self.config.generations

    def run(self, on_generation: Callable[["Evolution", list[Scored]], None] | None = None,
            stop_after: int | None = None) -> list[Scored]:
        """Step until the last generation (or ``stop_after`` generations of this call: an interruption);
        ``on_generation`` runs after each (checkpoint, progress). Returns the best ``parents`` so far."""
        steps = 0
        while not self.done and (stop_after is None or steps < stop_after):
            new = self.step()
            steps += 1
            if on_generation is not None:
                on_generation(self, new)
        return self.top(self.config.parents)

    # ---- state ----------------------------------------------------------------------------
    def state(self) -> dict:
        """JSON-able state: enough to resume to exactly the result of an uninterrupted run."""
        version, internal, gauss = self.rng.getstate()
        return {"schema": STATE_SCHEMA, "config": asdict(self.config), "genes": list(self.genes),
                "generation": self.generation, "rng": [version, list(internal), gauss],
                "rejected": dict(self.rejected),
                "scored": [{"genes": list(self.key(s.arch)), "fitness": s.fitness, "generation": s.generation}
                           for s in self.scored]}

    def load_state(self, st: dict) -> None:
        """Restore :meth:`state`; refuses a state from another search (other genes or settings)."""
        if not isinstance(st, dict) or st.get("schema") != STATE_SCHEMA:
            raise UserError("the search state is damaged or of another version")
        if st["genes"] != list(self.genes):
            raise UserError("the search state belongs to another space (its genes differ)")
        if st["config"] != asdict(self.config):
            want = asdict(self.config)
            diff = sorted(k for k in set(st["config"]) | set(want) if st["config"].get(k) != want.get(k))
            raise UserError(f"--resume with other settings than the interrupted search ({', '.join(diff)}); "
                            "use the same options")
        version, internal, gauss = st["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.generation = int(st["generation"])
        self.rejected = dict(st.get("rejected", self.rejected))
        self.scored, self._seen = [], {}
        for s in st["scored"]:
            arch = dict(zip(self.genes, s["genes"]))
            self._seen[self.key(arch)] = len(self.scored)
            self.scored.append(Scored(arch, float(s["fitness"]), int(s["generation"])))


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower cost, higher score), by cost.

    ``points`` are (cost, score) pairs, e.g. (latency, accuracy).
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front
