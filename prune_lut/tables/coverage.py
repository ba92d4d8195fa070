"""Which table keys a channel space can produce, and a few networks that cover them all.

Every layer position of a family depends on at most a couple of genes (a conv on the genes of
its input and output widths). ``all_specs`` enumerates, per position, every combination of those
genes' choices, so it lists every key any arch of the space can produce (deduplicated: blocks of
one stage share most keys). ``covering_archs`` then picks archs greedily, each covering as many
still-missing keys as it can (positions with the most missing keys choose first), so the build
profiles ~max(keys per position) networks instead of one per key (``tables.build`` measures them).
"""
from __future__ import annotations

import itertools
import logging
import random
from typing import Callable

from ..errors import UserError
from ..latency.spec import LayerSpec
from ..pruning.space import ChannelSpace

log = logging.getLogger(__name__)


def position_genes(space: ChannelSpace) -> list[tuple[str, ...]]:
    """For each layer position (``layer_specs`` order), the genes its spec depends on."""
    full = space.full()
    base = space.layer_specs(full)
    deps: list[list[str]] = [[] for _ in base]
    for name, g in space.genes.items():
        if len(g.choices) < 2:
            continue
        other = space.layer_specs({**full, name: g.choices[0]})
        for i, (a, b) in enumerate(zip(base, other)):
            if a != b:
                deps[i].append(name)
    return [tuple(d) for d in deps]


def position_keys(space: ChannelSpace) -> list[dict[tuple[int, ...], str]]:
    """For each position: {widths of its genes: key} over every combination of their choices."""
    genes = position_genes(space)
    full = space.full()
    out: list[dict[tuple[int, ...], str]] = [{} for _ in genes]
    for gs in set(genes):
        positions = [i for i, g in enumerate(genes) if g == gs]
        for combo in itertools.product(*(space.genes[g].choices for g in gs)):
            specs = space.layer_specs({**full, **dict(zip(gs, combo))})
            for i in positions:
                out[i][combo] = specs[i].key
    return out


def all_specs(space: ChannelSpace) -> dict[str, LayerSpec]:
    """Every layer spec any arch of ``space`` can produce, by key (sorted)."""
    keys = {k for pk in position_keys(space) for k in pk.values()}
    return {k: LayerSpec.from_key(k) for k in sorted(keys)}


FIELDS = ("cin", "cout", "groups")  # the spec fields a gene's width can set


def key_checker(space: ChannelSpace) -> Callable[[str], bool]:
    """Whether a table key is one some arch of ``space`` produces, without enumerating every key
    (``all_specs`` takes seconds at 224): per layer position, the fields each gene sets (found by
    moving one gene at a time), and a key matches a position when its other fields are the
    position's and each gene-set field holds a width of that gene (one width per gene)."""
    full = space.full()
    base = space.layer_specs(full)
    setters: list[dict[str, str]] = [{} for _ in base]
    for name, g in space.genes.items():
        if len(g.choices) < 2:
            continue
        other = space.layer_specs({**full, name: g.choices[0]})
        for i, (a, b) in enumerate(zip(base, other)):
            for f in FIELDS:
                if getattr(a, f) != getattr(b, f):
                    if (getattr(a, f), getattr(b, f)) != (g.base, g.choices[0]):  # not a width: enumerate
                        keys = set(all_specs(space))
                        return keys.__contains__
                    setters[i][f] = name
    positions: dict[tuple, list[tuple[LayerSpec, dict[str, str]]]] = {}
    for spec, st in zip(base, setters):
        positions.setdefault((spec.op, spec.size, spec.kernel, spec.stride, spec.act, spec.residual), []).append(
            (spec, st))
    choices = {n: set(g.choices) for n, g in space.genes.items()}

    def fits(s: LayerSpec, spec: LayerSpec, st: dict[str, str]) -> bool:
        chosen: dict[str, int] = {}
        for f in FIELDS:
            v = getattr(s, f)
            gene = st.get(f)
            if gene is None:
                if v != getattr(spec, f):
                    return False
            elif v not in choices[gene] or chosen.setdefault(gene, v) != v:
                return False
        return True

    def check(key: str) -> bool:
        try:
            s = LayerSpec.from_key(key)
        except ValueError:
            return False
        return any(fits(s, spec, st) for spec, st in positions.get(
            (s.op, s.size, s.kernel, s.stride, s.act, s.residual), ()))

    return check


def table_coverage(space: ChannelSpace, entries) -> dict:
    """How a table's entry keys cover ``space``: the space's key count, the entries that are keys of
    the space, and those that are not (a renamed or foreign key covers nothing)."""
    check = key_checker(space)
    foreign = sorted(k for k in entries if not check(k))
    return {"in_space": len(entries) - len(foreign), "not_in_space": len(foreign), "foreign_keys": foreign[:3]}


def covering_archs(space: ChannelSpace, keys=None, seed: int = 0) -> list[dict[str, int]]:
    """Archs that together contain every key of ``keys`` (default: all of the space's), greedily few."""
    rng = random.Random(seed)
    genes = position_genes(space)
    pkeys = position_keys(space)
    remaining = set(keys) if keys is not None else {k for pk in pkeys for k in pk.values()}
    unknown = remaining - {k for pk in pkeys for k in pk.values()}
    if unknown:
        raise UserError(f"key {sorted(unknown)[0]} cannot be produced by this {space.family} space")
    todo = []  # per position: its combos in a random order (pruned lazily as keys get covered)
    for pk in pkeys:
        combos = list(pk.items())
        rng.shuffle(combos)
        todo.append(combos)
    archs = []
    while remaining:
        for i in range(len(todo)):
            todo[i] = [(c, k) for c, k in todo[i] if k in remaining]
        order = sorted(range(len(todo)), key=lambda i: -len(todo[i]))
        arch: dict[str, int] = {}
        taken: set[str] = set()
        for i in order:
            gs = genes[i]
            for combo, key in todo[i]:
                if key in taken or any(g in arch and arch[g] != w for g, w in zip(gs, combo)):
                    continue
                arch.update(zip(gs, combo))
                taken.add(key)
                break
        for name, g in space.genes.items():
            arch.setdefault(name, rng.choice(g.choices))
        arch = {n: arch[n] for n in space.genes}
        new = {s.key for s in space.layer_specs(arch)} & remaining
        if not new:  # cannot happen: the first position with missing keys always takes one
            raise RuntimeError("covering_archs made no progress")
        remaining -= new
        archs.append(arch)
    return archs
