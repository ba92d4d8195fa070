"""The evolutionary algorithm itself, on cheap synthetic objectives.

These test the *algorithm* (determinism, budgets, resume, duplicates, tied genes), not accuracy:
the fitness is a real but synthetic function of the arch (a weighted width sum standing in for
accuracy), the constraint is the arch's real MACs in the quickstart space.
"""
from __future__ import annotations

import json

import pytest

from prune_lut.errors import UserError
from prune_lut.pruning.evolution import Evolution, EvolutionConfig, pareto_front
from prune_lut.pruning.space import get_space


@pytest.fixture(scope="module")
def space():
    return get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)


def make(space, budget_share=0.4, calls=None, seeds=(), **cfg):
    genes = {n: g.choices for n, g in space.genes.items()}
    budget = budget_share * space.macs(space.full())
    # Synthetic fitness (algorithm test only): reward wide stage genes, less so mid genes.
    weights = {n: (3.0 if g.kind == "stage" else 1.0) / g.base for n, g in space.genes.items()}

    def fitness(archs):
        if calls is not None:
            calls.append(len(archs))
        return [sum(weights[n] * w for n, w in a.items()) for a in archs]

    return Evolution(genes, fitness, lambda a: space.macs(a) <= budget, EvolutionConfig(**cfg), seeds=seeds), budget


def summary(evo):
    return [(evo.key(s.arch), s.fitness, s.generation) for s in evo.scored]


def test_same_seed_same_result_other_seed_differs(space):
    a, _ = make(space, population=12, generations=4, parents=4, seed=3)
    b, _ = make(space, population=12, generations=4, parents=4, seed=3)
    c, _ = make(space, population=12, generations=4, parents=4, seed=4)
    a.run(), b.run(), c.run()
    assert summary(a) == summary(b)
    assert summary(a) != summary(c)


def test_budget_respected_no_duplicates_and_progress(space):
    calls = []
    evo, budget = make(space, budget_share=0.3, calls=calls, population=16, generations=6, parents=4, seed=0)
    top = evo.run()
    assert all(space.macs(s.arch) <= budget for s in evo.scored)
    keys = [evo.key(s.arch) for s in evo.scored]
    assert len(keys) == len(set(keys)) == sum(calls)
    assert all(space.check_arch(s.arch) == s.arch for s in evo.scored)
    # The evolution must beat its own random initial population on the objective.
    gen0 = max(s.fitness for s in evo.scored if s.generation == 0)
    assert top[0].fitness > gen0
    assert [s.fitness for s in top] == sorted((s.fitness for s in evo.scored), reverse=True)[:4]
    assert evo.rejected["infeasible"] > 0  # the budget bit


def test_resume_equals_uninterrupted(space, tmp_path):
    full, _ = make(space, population=10, generations=5, parents=3, seed=7)
    full.run()
    part, _ = make(space, population=10, generations=5, parents=3, seed=7)
    part.step(), part.step()
    path = tmp_path / "state.json"
    path.write_text(json.dumps(part.state()))  # through real JSON, as the search checkpoints it
    resumed, _ = make(space, population=10, generations=5, parents=3, seed=7)
    resumed.load_state(json.loads(path.read_text()))
    assert resumed.generation == 2
    resumed.run()
    assert summary(resumed) == summary(full)


def test_resume_with_other_settings_refused(space):
    a, _ = make(space, population=10, generations=2, parents=3, seed=7)
    a.step()
    b, _ = make(space, population=10, generations=2, parents=3, seed=8)
    with pytest.raises(UserError, match="seed"):
        b.load_state(a.state())


def test_tied_genes_move_together():
    genes = {"a": (1, 2, 3, 4), "b": (1, 2, 3, 4), "c": (5, 6)}
    seen = []

    def fitness(archs):
        seen.extend(archs)
        return [a["a"] + a["c"] for a in archs]

    evo = Evolution(genes, fitness, lambda a: True,
                    EvolutionConfig(population=4, generations=3, parents=2, mutation_prob=0.5), tied=[("a", "b")])
    evo.run()
    assert seen and all(a["a"] == a["b"] for a in seen)
    with pytest.raises(ValueError):
        Evolution(genes, fitness, lambda a: True, EvolutionConfig(), tied=[("a", "c")])


def test_seeds_open_the_first_generation_and_bound_the_result(space):
    _, budget = make(space)
    inside = space.uniform(0.3)
    assert space.macs(inside) <= budget < space.macs(space.full())
    # reversed gene order: seeds are archs by name, whatever their order
    seeds = [dict(reversed(list(inside.items()))), space.full(), dict(inside)]
    evo, _ = make(space, seeds=seeds, population=8, generations=3, parents=3, seed=0)
    plain, _ = make(space, population=8, generations=3, parents=3, seed=0)
    evo.run(), plain.run()
    first = evo.scored[0]
    assert first.arch == inside and first.generation == 0
    keys = [evo.key(s.arch) for s in evo.scored]
    assert keys.count(evo.key(inside)) == 1  # the repeated seed is evaluated once
    assert evo.key(space.full()) not in keys  # the infeasible one never
    assert evo.top(1)[0].fitness >= first.fitness
    assert summary(evo) != summary(plain)


def test_impossible_constraint_is_a_user_error(space):
    evo, _ = make(space, budget_share=0.0, population=4, generations=1, parents=2, max_tries=5)
    with pytest.raises(UserError, match="budget"):
        evo.step()


def test_bad_settings():
    for bad in ({"parents": 0}, {"population": 1}, {"mutation_prob": 1.5}, {"generations": 0}):
        with pytest.raises(UserError):
            EvolutionConfig(**bad).check()


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (3.0, 0.7), (4.0, 0.9), (0.5, 0.1)]
    assert pareto_front(pts) == [5, 0, 2, 4]


def test_level_draws_cover_every_size_uniform_genes_do_not(space):
    """Random archs are drawn by level: their MACs span the space, where gene-by-gene uniform draws
    pile up in the middle (so a budget near either end got almost no random archs near it)."""
    import numpy as np

    evo, _ = make(space, seed=0)
    full = space.macs(space.full())
    level = np.array([space.macs(evo.level_arch()) / full for _ in range(400)])
    uniform = np.array([space.macs(evo.random_arch()) / full for _ in range(400)])
    for lo, hi in ((0.0, 0.15), (0.6, 1.0)):
        assert np.mean((level >= lo) & (level <= hi)) >= 0.1
        assert np.mean((uniform >= lo) & (uniform <= hi)) < 0.02
    # each draw keeps its genes near one level: ranks within the window (LEVEL_WIDTH = half the choices)
    for _ in range(50):
        a = evo.level_arch()
        ranks = [sorted(space.genes[n].choices).index(w) / len(space.genes[n].choices) for n, w in a.items()]
        assert max(ranks) - min(ranks) <= 0.5 + 2 / min(len(g.choices) for g in space.genes.values())
