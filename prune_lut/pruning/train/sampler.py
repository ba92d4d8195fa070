"""Which coding vectors each PruningNet training step trains (the training rule)."""
from __future__ import annotations

import math
import random
from typing import Callable

from ...errors import UserError
from ..evolution import level_draw
from ..space import ChannelSpace

RULES = ("sandwich", "widest", "alternate", "random")
TEACHER_RULES = ("sandwich", "widest")  # the widest arch leads every step: it can teach
RANDOM_ARCHS = {"sandwich": 2, "widest": 3}  # default random archs per step: 4 archs a step under either rule
DRAWS = ("uniform", "level", "narrow")


class ArchSampler:
    """The coding vectors training step ``s`` trains, a function of (seed, s) alone, so every process
    and every resumed run draws the same ones. Optional MACs or LUT-latency ranges are enforced by
    rejection, and the widest and smallest archs are then the widest and narrowest uniform-width
    archs inside the range.

    ``draws``, how a random coding vector is drawn:
      ``uniform``    each gene uniformly among its choices (MetaPruning's): sizes concentrate in the
                     middle of the space, and near its narrow end only the smallest arch is trained;
      ``level``      around a random size, as the search draws its random archs (``evolution.level_draw``):
                     every size of the space, the narrow end included, is trained as often;
      ``narrow``     as ``level``, the level drawn with density 2(1 - t): small sizes more often, the
                     widest arch being trained on every step anyway (rules ``widest`` and ``sandwich``).

    ``rule``:
      ``random``     one random coding vector per step (MetaPruning's rule);
      ``alternate``  the widest arch on even steps, a random one on odd steps;
      ``sandwich``   the widest, the smallest and ``random_archs`` random ones on every step, their
                     gradients accumulated before one update (the sandwich rule of Yu & Huang 2019);
      ``widest``     the widest and ``random_archs`` random ones: no fixed smallest arch, which the
                     sandwich trains on every step and the fitness then rates far above its
                     neighbours at the narrow end (docs/BENCHMARKS.md, the strong-budget benchmark).
    Measured A/B in docs/BENCHMARKS.md ("PruningNet training rules").
    """

    MAX_TRIES = 2000

    def __init__(self, space: ChannelSpace, seed: int, macs_range: tuple[float, float] | None = None,
                 latency_range: tuple[float, float] | None = None, lut: str | None = None,
                 rule: str = "widest", random_archs: int | None = None, draws: str = "level"):
        if rule not in RULES:
            raise UserError(f"unknown training rule {rule!r}; choose one of {', '.join(RULES)}")
        if draws not in DRAWS:
            raise UserError(f"unknown arch draws {draws!r}; choose one of {', '.join(DRAWS)}")
        random_archs = RANDOM_ARCHS.get(rule, 1) if random_archs is None else random_archs
        if random_archs < (0 if rule == "sandwich" else 1) or random_archs > 16:
            raise UserError(f"random archs per step must lie in 0..16 (sandwich) or 1..16 ({rule}), got {random_archs}")
        self.space, self.seed, self.rule, self.random_archs, self.draws = space, seed, rule, random_archs, draws
        self._ascending = [sorted(g.choices) for g in space.genes.values()]
        self.macs_range, self.latency_range, self.lut = macs_range, latency_range, lut
        self._predict: Callable[[dict], float] | None = None
        if latency_range is not None:
            if lut is None:
                raise UserError("--latency-range needs --lut FILE (the device's lookup table)")
            from ...latency.lutfile import LUT
            from ...latency.predictor import Predictor

            pred = Predictor(LUT.load(lut, space_hash=space.hash, space=space.describe()))
            self._predict = lambda a: pred.predict_ms(space.layer_specs(a))
        for name, rng, f in (("MACs", macs_range, space.macs), ("latency", latency_range, self._predict)):
            if rng is None:
                continue
            lo, hi = rng
            ends = sorted((f(space.smallest()), f(space.full())))
            if lo > hi or hi < ends[0] or lo > ends[1]:
                raise UserError(f"{name} range {lo:g}:{hi:g} misses the space ({ends[0]:g} .. {ends[1]:g}); "
                                "choose a range inside it")
        self.widest = self._uniform_inside(range(100, 0, -1))
        self.smallest = self._uniform_inside(range(1, 101))

    def _uniform_inside(self, percents) -> dict[str, int]:
        """The first uniform-width arch (ratios in ``percents`` order) inside the range, else a random one."""
        for k in percents:
            arch = self.space.uniform(k / 100)
            if self.ok(arch):
                return arch
        return self.random(-1)

    def ok(self, arch: dict[str, int]) -> bool:
        if self.macs_range and not self.macs_range[0] <= self.space.macs(arch) <= self.macs_range[1]:
            return False
        return not (self.latency_range and not self.latency_range[0] <= self._predict(arch) <= self.latency_range[1])

    def random(self, step: int, j: int = 0) -> dict[str, int]:
        """The ``j``-th random coding vector of step ``step`` (drawn by ``draws``, inside the range)."""
        rng = random.Random(f"{self.seed}:{step}" if j == 0 else f"{self.seed}:{step}:{j}")
        for _ in range(self.MAX_TRIES):
            if self.draws == "uniform":
                arch = self.space.random(rng)
            else:
                t = 1 - math.sqrt(1 - rng.random()) if self.draws == "narrow" else None
                arch = dict(zip(self.space.genes, level_draw(rng, self._ascending, t=t)))
            if self.ok(arch):
                return arch
        raise UserError(f"no arch inside the requested range after {self.MAX_TRIES} random draws; widen the range")

    def step_archs(self, step: int) -> list[dict[str, int]]:
        """The archs step ``step`` trains, in order (with ``sandwich`` or ``widest`` the widest first: the teacher)."""
        if self.rule == "random":
            return [self.random(step)]
        if self.rule == "alternate":
            return [dict(self.widest)] if step % 2 == 0 else [self.random(step)]
        fixed = [dict(self.widest), dict(self.smallest)] if self.rule == "sandwich" else [dict(self.widest)]
        return fixed + [self.random(step, j) for j in range(self.random_archs)]

    def describe(self) -> dict:
        return {"rule": self.rule, "random_archs": self.random_archs if self.rule in TEACHER_RULES else None,
                "draws": self.draws,
                "macs_range": list(self.macs_range) if self.macs_range else None,
                "latency_range": list(self.latency_range) if self.latency_range else None,
                "lut": str(self.lut) if self.lut else None}

    @staticmethod
    def rule_of(described: dict) -> tuple[str, int]:
        """(rule, random archs) of a checkpoint's sampler record; before rules existed it held ``sandwich``."""
        if "rule" in described:
            n = described.get("random_archs")
            return described["rule"], 2 if n is None else n
        return ("alternate" if described.get("sandwich") else "random"), 2
