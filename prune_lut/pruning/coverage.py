"""Which table keys a channel space can produce, and a few networks that cover them all.

Every layer position of a family depends on at most a couple of genes (a conv on the genes of
its input and output widths). ``all_specs`` enumerates, per position, every combination of those
genes' choices, so it lists every key any arch of the space can produce (deduplicated: blocks of
one stage share most keys). ``covering_archs`` then picks archs greedily, each covering as many
still-missing keys as it can (positions with the most missing keys choose first), so the build
profiles ~max(keys per position) networks instead of one per key. ``build_space_table`` wires
this to ``latency.build`` for ``prune-lut build``.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import logging
import os
import random
from pathlib import Path

from ..devices import Device
from ..errors import UserError
from ..latency.build import Network, build_table
from ..latency.lutfile import LUT
from ..latency.spec import LayerSpec
from ..latency.worker import protocol_with_defaults
from .space import ChannelSpace

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


def arch_id(space: ChannelSpace, arch: dict[str, int]) -> str:
    return hashlib.sha1(repr(space.vector(arch)).encode()).hexdigest()[:12]


def space_network(space: ChannelSpace, arch: dict[str, int], batch: int = 1) -> Network:
    """A :class:`Network` for ``arch``: keys in order and key-named ONNX (random weights: latency only)."""
    from .export import onnx_model
    from .net import build_net

    def onnx_bytes() -> bytes:
        return onnx_model(space, build_net(space, arch).eval(), batch=batch, key_names=True).SerializeToString()

    return Network(arch_id(space, arch), [s.key for s in space.layer_specs(arch)], onnx_bytes)


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (1-based) -> (i, n)."""
    if shard is None:
        return None
    try:
        i, n = (int(x) for x in shard.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise UserError(f"--shard {shard!r}: expected i/n with 1 <= i <= n, e.g. 1/2") from None
    return i, n


def build_space_table(space: ChannelSpace, device: Device, out: str | os.PathLike, meter=None,
                      time_budget_min: float | None = None, shard: str | None = None, resume: bool = False,
                      seed: int = 0, heldout: int = 8, group: int = 4, progress: bool = True) -> LUT:
    """Measure (or resume measuring) every key of ``space`` on ``device`` into the LUT file ``out``."""
    from ..latency.measure import get_meter

    out = Path(out)
    sh = parse_shard(shard)
    keys = sorted(all_specs(space))
    targets = keys[sh[0] - 1::sh[1]] if sh else keys
    if out.exists() and not resume:
        raise UserError(f"{out} exists; pass --resume to continue that build, or choose another --out")
    meter = meter or get_meter(device)
    if out.exists():
        lut = LUT.load(out, space_hash=space.hash)
        if lut.device != device.to_dict():
            raise UserError(f"{out} was measured with another profile of device {lut.device.get('name')!r}; "
                            f"resume it with that profile, or build into another --out")
        if lut.extra.get("shard") != shard:
            raise UserError(f"{out} is shard {lut.extra.get('shard')} but --shard {shard} was given; give the same")
        log.info("resuming %s: %d entries stored", out, len(lut.entries))
    else:
        info = meter.info()
        lut = LUT(device=device.to_dict(), provenance={
            **info, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "protocol": protocol_with_defaults(device.protocol), "threads": device.threads,
            "precision": device.precision, "method": "per-node profile of whole networks (latency/build.py)",
            "prune_lut": _version()}, space={**space.describe(), "hash": space.hash, "keys": len(keys)},
            extra={"shard": shard})
    rng = random.Random(seed + 1)
    held = [space_network(space, space.random(rng), device.batch) for _ in range(heldout)]

    def plan(missing: list[str]) -> list[Network]:
        return [space_network(space, a, device.batch) for a in covering_archs(space, missing, seed)]

    import torch

    threads = torch.get_num_threads()
    if device.backend != "torch":  # exports run beside the measurements: keep them on one core
        torch.set_num_threads(1)
    try:
        return build_table(lut, out, meter, plan, targets, space_network(space, space.full(), device.batch),
                           heldout=held, group=group,
                           time_budget_s=None if time_budget_min is None else 60 * time_budget_min,
                           seed=seed, progress=progress)
    finally:
        torch.set_num_threads(threads)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prune-lut")
    except PackageNotFoundError:
        return "unknown"
