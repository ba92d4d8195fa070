"""Layer specs: the unit a lookup table is keyed on.

A spec says everything about one operator that decides its latency on a device (op kind,
input size, channels, kernel, stride, groups, activation) and nothing about where it came
from, so tables can be built for any list of specs, from any model family.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

OPS = ("conv", "add", "maxpool", "gap", "linear")


@dataclass(frozen=True, order=True)
class LayerSpec:
    """One operator of a network, as a lookup table sees it.

    ``op``: ``conv`` (with its BatchNorm folded and activation fused), ``add`` (residual sum,
    followed by ``act``), ``maxpool``, ``gap`` (global average pool), ``linear``.
    ``size`` is the input height (inputs are square); channels count per input/output.
    ``residual`` marks a conv whose output feeds a residual add.
    """

    op: str
    size: int
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act: str = "none"
    residual: bool = False

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; expected one of {OPS}")

    @property
    def out_size(self) -> int:
        """Output height, with 'same' padding (k // 2) as every family here uses."""
        if self.op in ("conv", "maxpool"):
            pad = self.kernel // 2
            return (self.size + 2 * pad - self.kernel) // self.stride + 1
        if self.op in ("gap", "linear"):
            return 1
        return self.size

    @property
    def key(self) -> str:
        """Stable text key, e.g. ``conv-s56-c24x144-k1-st1-g1-relu6``."""
        k = f"{self.op}-s{self.size}-c{self.cin}x{self.cout}-k{self.kernel}-st{self.stride}-g{self.groups}-{self.act}"
        return k + ("-res" if self.residual else "")

    @property
    def macs(self) -> int:
        """Multiply-accumulates of this operator (batch 1)."""
        if self.op == "conv":
            o = self.out_size
            return o * o * self.cout * (self.cin // self.groups) * self.kernel * self.kernel
        if self.op == "linear":
            return self.cin * self.cout
        return 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LayerSpec":
        return cls(**d)

    @classmethod
    def from_key(cls, key: str) -> "LayerSpec":
        """Inverse of :attr:`key`."""
        parts = key.split("-")
        try:
            op, s, c, k, st, g, act = parts[:7]
            cin, cout = c[1:].split("x")
            return cls(op=op, size=int(s[1:]), cin=int(cin), cout=int(cout), kernel=int(k[1:]),
                       stride=int(st[2:]), groups=int(g[1:]), act=act, residual=parts[7:] == ["res"])
        except (ValueError, IndexError) as e:
            raise ValueError(f"not a layer key: {key!r}") from e
