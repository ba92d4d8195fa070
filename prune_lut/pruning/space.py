"""Channel spaces: the one description of a model family that everything else derives from.

A family is written once as a tuple of *units* (:class:`Conv`, :class:`Block`, :class:`MaxPool`,
:class:`Head`) whose channel counts name *genes*. A :class:`ChannelSpace` binds that description
to a grid of allowed widths per gene; an *arch* (coding vector) picks one width per gene. The
plain network, the PruningNet, MACs/params, layer specs and ONNX export all walk these units.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from typing import Callable, Iterator, Union

from ..errors import ParamError, UserError
from ..latency.spec import LayerSpec
from ..schemas import SPACE_LIMITS

Ref = Union[str, int]  # a gene name, or a fixed channel count (image channels, classes)

# The paper's grid: 31 ratios 0.10, 0.13, ..., 1.00 of each gene's base width.
PAPER_GRID: tuple[float, ...] = tuple(round(0.10 + 0.03 * i, 2) for i in range(31))
# How a ratio becomes a width: ``round`` (nearest, then the nearest multiple; this project's
# default) or ``floor`` (``int(base * ratio)`` with no multiple: MetaPruning's reference code,
# whose released archs need exactly those widths).
ROUNDINGS = ("round", "floor")


@dataclass(frozen=True)
class Conv:
    """Conv + BatchNorm (+ activation). ``depthwise`` means groups = channels (cin == cout)."""

    name: str
    cin: Ref
    cout: Ref
    kernel: int
    stride: int = 1
    depthwise: bool = False
    act: str = "relu"  # relu | relu6 | none


@dataclass(frozen=True)
class Block:
    """A block of convs, residual or not: ``act(body(x) + shortcut(x))`` when ``residual``.

    ``shortcut`` None with ``residual`` is the identity. ``mid`` names the block's middle-width
    gene, which its PruningBlocks are fed beside their input and output widths.
    """

    name: str
    body: tuple[Conv, ...]
    shortcut: Conv | None = None
    residual: bool = True
    act: str = "none"
    mid: str | None = None

    @property
    def cin(self) -> Ref:
        return self.body[0].cin

    @property
    def cout(self) -> Ref:
        return self.body[-1].cout


@dataclass(frozen=True)
class MaxPool:
    name: str
    kernel: int = 3
    stride: int = 2


@dataclass(frozen=True)
class Head:
    """Global average pool, then a linear classifier."""

    name: str
    cin: Ref
    num_classes: int


Unit = Union[Conv, Block, MaxPool, Head]


@dataclass(frozen=True)
class Gene:
    """A prunable width: its base (full) width and the widths it may take."""

    name: str
    base: int
    choices: tuple[int, ...]
    kind: str  # "stage" (shared output width), "mid" (block middle width), "layer" (one conv)


def grid_widths(base: int, grid: tuple[float, ...], multiple: int, rounding: str = "round") -> tuple[int, ...]:
    """Widths for ``base`` on ``grid``: ``round`` rounds each to a multiple of ``multiple``;
    ``floor`` takes ``int(base * ratio)`` as MetaPruning does (``multiple`` must be 1; a ratio
    whose floor is 0 channels gives no width).

    The full width is always a choice, so the standard network stays in every space.
    """
    out = set()
    for r in grid:
        if rounding == "floor":
            w = int(base * r)
            if w < 1:
                continue
        else:
            w = max(1, int(round(r * base)))
            if multiple > 1:
                w = max(multiple, int(round(w / multiple)) * multiple)
        out.add(min(w, base))
    out.add(base)
    return tuple(sorted(out))


@dataclass(frozen=True)
class Family:
    """A registered model family: builds its units for the given options."""

    name: str
    build: Callable[..., tuple[tuple[Unit, ...], dict[str, tuple[int, str]]]]
    doc: str
    reference: str | None = None  # torchvision constructor with the same full-width net, if any


FAMILIES: dict[str, Family] = {}  # filled by the modules of ``families/``; read it through registry()


def registry() -> dict[str, Family]:
    """Every registered family, the family modules imported on first use (whatever the caller
    imported before: a checkpoint or table names its family before anything else is loaded)."""
    from . import families  # noqa: F401  (each family module registers itself)

    return FAMILIES


def register_family(name: str, doc: str, reference: str | None = None):
    """Decorator for a family builder ``fn(num_classes, in_channels, small_input) -> (units, genes)``."""

    def wrap(fn):
        if name in FAMILIES:
            raise ValueError(f"family {name!r} registered twice")
        FAMILIES[name] = Family(name, fn, doc, reference)
        return fn

    return wrap


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


@dataclass
class ChannelSpace:
    """A family bound to its options and a width grid. Derives everything from the units."""

    family: str
    resolution: int = 224
    num_classes: int = 1000
    in_channels: int = 3
    small_input: bool = False
    grid: tuple[float, ...] = PAPER_GRID
    multiple: int = 1
    rounding: str = "round"
    units: tuple[Unit, ...] = field(init=False, repr=False)
    genes: dict[str, Gene] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.family not in registry():
            raise UserError(f"unknown family {self.family!r}; choose one of: {', '.join(sorted(FAMILIES))}")
        for name, (lo, hi) in SPACE_LIMITS.items():  # the sizes a space may have (schemas.SPACE_LIMITS)
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ParamError(name, f"must be an integer in {lo}..{hi}, got {v!r}")
        if self.rounding not in ROUNDINGS:
            raise UserError(f"unknown grid rounding {self.rounding!r}; choose one of: {', '.join(ROUNDINGS)}")
        if self.rounding == "floor" and self.multiple != 1:
            raise UserError(f"grid rounding 'floor' takes MetaPruning's widths as they are; "
                            f"give multiple 1 (got {self.multiple}) or use rounding 'round'")
        self.grid = tuple(float(g) for g in self.grid)
        if not self.grid or any(not 0 < g <= 1 for g in self.grid):
            raise UserError("grid ratios must lie in (0, 1]")
        units, bases = FAMILIES[self.family].build(
            num_classes=self.num_classes, in_channels=self.in_channels, small_input=self.small_input)
        self.units = units
        self.genes = {n: Gene(n, b, grid_widths(b, self.grid, self.multiple, self.rounding), kind) for n, (b, kind) in bases.items()}
        if self.resolution < self.min_resolution:
            raise UserError(
                f"resolution {self.resolution} is too small for {self.family} "
                f"({'small-input' if self.small_input else 'standard'} stem needs >= {self.min_resolution}); "
                "raise --resolution" + ("" if self.small_input else " or use the small-input stem"))

    # ---- options and identity -------------------------------------------------------------
    @property
    def min_resolution(self) -> int:
        """The network's total stride: a smaller input would leave the last stages on padding alone."""
        stride = 1
        for u in self.units:
            for part in u.body if isinstance(u, Block) else (u,):
                stride *= getattr(part, "stride", 1)
        return stride

    def describe(self) -> dict:
        """JSON-able description of the space (what a LUT or checkpoint must match).

        ``rounding`` appears only when it is not the default, so every space described before it
        existed keeps its description and hash.
        """
        d = {"family": self.family, "resolution": self.resolution, "num_classes": self.num_classes,
             "in_channels": self.in_channels, "small_input": self.small_input,
             "grid": list(self.grid), "multiple": self.multiple}
        if self.rounding != "round":
            d["rounding"] = self.rounding
        return d

    @property
    def hash(self) -> str:
        """Short digest of the description and every gene's choices."""
        blob = json.dumps({**self.describe(), "genes": {n: g.choices for n, g in self.genes.items()}}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_description(cls, d: dict) -> "ChannelSpace":
        return cls(family=d["family"], resolution=d["resolution"], num_classes=d["num_classes"],
                   in_channels=d.get("in_channels", 3), small_input=d.get("small_input", False),
                   grid=tuple(d.get("grid", PAPER_GRID)), multiple=d.get("multiple", 1),
                   rounding=d.get("rounding", "round"))

    # ---- archs ----------------------------------------------------------------------------
    @property
    def gene_names(self) -> list[str]:
        return list(self.genes)

    def full(self) -> dict[str, int]:
        return {n: g.base for n, g in self.genes.items()}

    def smallest(self) -> dict[str, int]:
        return {n: g.choices[0] for n, g in self.genes.items()}

    def uniform(self, ratio: float) -> dict[str, int]:
        """Every gene at the grid width nearest ``ratio`` of its base (ties go wider)."""
        if not 0 < ratio <= 1:
            raise UserError(f"uniform ratio must lie in (0, 1], got {ratio}")
        return {n: min(g.choices, key=lambda w: (abs(w - ratio * g.base), -w)) for n, g in self.genes.items()}

    def random(self, rng: random.Random) -> dict[str, int]:
        return {n: rng.choice(g.choices) for n, g in self.genes.items()}

    def check_arch(self, arch: dict) -> dict[str, int]:
        """Return ``arch`` as {gene: width} in gene order, or raise UserError naming the first bad gene."""
        if not isinstance(arch, dict):
            raise UserError("arch genes must be a JSON object {gene: width}")
        missing = [n for n in self.genes if n not in arch]
        extra = [n for n in arch if n not in self.genes]
        if extra:
            raise UserError(f"unknown gene {extra[0]!r} for {self.family} ({len(arch)} genes given, "
                            f"{len(self.genes)} expected); list them with `prune-lut space {self.family}`")
        if missing:
            raise UserError(f"gene {missing[0]!r} is missing ({len(arch)} genes given, {len(self.genes)} expected); "
                            f"list them with `prune-lut space {self.family}`")
        out = {}
        for n, g in self.genes.items():
            w = arch[n]
            if isinstance(w, bool) or not isinstance(w, int):
                raise UserError(f"gene {n!r}: width must be an integer, got {w!r}")
            if w > g.base:
                raise UserError(f"gene {n!r}: width {w} exceeds the base width {g.base}")
            if w not in g.choices:
                raise UserError(f"gene {n!r}: width {w} is not on the grid; allowed: {list(g.choices)}")
            out[n] = w
        return out

    def vector(self, arch: dict[str, int]) -> tuple[int, ...]:
        """Coding vector: widths in gene order (hashable, for caches and dedup)."""
        return tuple(arch[n] for n in self.genes)

    def ratios(self, arch: dict[str, int]) -> dict[str, float]:
        return {n: arch[n] / g.base for n, g in self.genes.items()}

    # ---- walking the units ----------------------------------------------------------------
    def convs(self) -> Iterator[Conv]:
        """Every conv in forward order (block bodies before their shortcut)."""
        for u in self.units:
            if isinstance(u, Conv):
                yield u
            elif isinstance(u, Block):
                yield from u.body
                if u.shortcut is not None:
                    yield u.shortcut

    @staticmethod
    def width(ref: Ref, arch: dict[str, int]) -> int:
        return arch[ref] if isinstance(ref, str) else ref

    def layer_specs(self, arch: dict[str, int]) -> list[LayerSpec]:
        """The network's operators in execution order, as lookup tables key them."""
        w = lambda ref: self.width(ref, arch)  # noqa: E731
        size = self.resolution
        specs: list[LayerSpec] = []

        def conv_spec(c: Conv, s: int, residual: bool = False) -> LayerSpec:
            cin, cout = w(c.cin), w(c.cout)
            return LayerSpec("conv", s, cin, cout, c.kernel, c.stride, cin if c.depthwise else 1, c.act, residual)

        for u in self.units:
            if isinstance(u, Conv):
                specs.append(conv_spec(u, size))
                size = _conv_out(size, u.kernel, u.stride)
            elif isinstance(u, Block):
                s_in = size
                for i, c in enumerate(u.body):
                    specs.append(conv_spec(c, size, residual=u.residual and i == len(u.body) - 1))
                    size = _conv_out(size, c.kernel, c.stride)
                if u.shortcut is not None:
                    specs.append(conv_spec(u.shortcut, s_in, residual=True))
                if u.residual:
                    specs.append(LayerSpec("add", size, w(u.cout), w(u.cout), act=u.act))
            elif isinstance(u, MaxPool):
                c = specs[-1].cout
                specs.append(LayerSpec("maxpool", size, c, c, u.kernel, u.stride))
                size = _conv_out(size, u.kernel, u.stride)
            elif isinstance(u, Head):
                c = w(u.cin)
                specs.append(LayerSpec("gap", size, c, c))
                specs.append(LayerSpec("linear", 1, c, u.num_classes))
        return specs

    def macs(self, arch: dict[str, int]) -> int:
        """Multiply-accumulates of one image through the pruned network (convs and the classifier)."""
        return sum(s.macs for s in self.layer_specs(arch))

    def params(self, arch: dict[str, int]) -> int:
        """Trainable parameters: conv weights, BatchNorm affine pairs, classifier weight and bias."""
        n = 0
        w = lambda ref: self.width(ref, arch)  # noqa: E731
        for c in self.convs():
            cin, cout = w(c.cin), w(c.cout)
            n += cout * (1 if c.depthwise else cin) * c.kernel * c.kernel + 2 * cout
        for u in self.units:
            if isinstance(u, Head):
                n += w(u.cin) * u.num_classes + u.num_classes
        return n


def get_space(family: str, **options) -> ChannelSpace:
    """The channel space of a registered family."""
    return ChannelSpace(family, **options)


def list_families() -> list[str]:
    return sorted(registry())
