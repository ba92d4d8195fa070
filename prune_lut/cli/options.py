"""Options several commands share, the types that check values at the door, and the small
conversions argument handling needs.

Every number a command takes goes through :class:`Number`: NaN, infinities and values outside
the range where the option makes sense are refused before anything is loaded, with the range in
the message (``--multiple must be an integer in 1..256, got 100000``). Sizes that describe a
channel space use the limits the space itself enforces (``schemas.SPACE_LIMITS``).
"""
from __future__ import annotations

import json
import math

import click

from ..errors import ParamError, UserError
from ..schemas import SPACE_LIMITS


class Number(click.ParamType):
    """An integer or a finite float within ``lo``..``hi`` (``lo_open``/``hi_open``: the end itself excluded).

    ``hint`` follows the message where the fix is not obvious (``leave it out to ...``)."""

    def __init__(self, kind: type = int, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
                 hi_open: bool = False, hint: str = ""):
        self.kind, self.lo, self.hi, self.lo_open, self.hi_open, self.hint = kind, lo, hi, lo_open, hi_open, hint
        self.name = "integer" if kind is int else "number"

    def range_text(self) -> str:
        lo, hi = self.lo, self.hi
        if self.kind is int:
            lo = None if lo is None else lo + self.lo_open
            hi = None if hi is None else hi - self.hi_open
            if lo is not None and hi is not None:
                return f"an integer in {lo}..{hi}"
            return "an integer" + (f" >= {lo}" if lo is not None else f" <= {hi}" if hi is not None else "")
        if lo is not None and hi is not None:
            return f"a finite number in {'(' if self.lo_open else '['}{lo:g}, {hi:g}{')' if self.hi_open else ']'}"
        if lo is not None:
            return f"a finite number {'>' if self.lo_open else '>='} {lo:g}"
        return "a finite number" + (f" {'<' if self.hi_open else '<='} {hi:g}" if hi is not None else "")

    def convert(self, value, param, ctx):
        if isinstance(value, self.kind) and not isinstance(value, bool):
            v = value
        else:
            try:
                v = self.kind(str(value).strip())
            except ValueError:
                self.fail(f"must be {self.range_text()}, got {value!r}", param, ctx)
        if self.kind is float and not math.isfinite(v):
            self.fail(f"must be {self.range_text()}, got {value}", param, ctx)
        low = self.lo is not None and (v < self.lo or (self.lo_open and v == self.lo))
        high = self.hi is not None and (v > self.hi or (self.hi_open and v == self.hi))
        if low or high:
            self.fail(f"must be {self.range_text()}, got {value}{self.hint}", param, ctx)
        return v


def count(lo: int = 1, hi: int | None = None, hint: str = "") -> Number:
    return Number(int, lo, hi, hint=hint)


def positive(hi: float | None = None, hint: str = "") -> Number:
    return Number(float, 0.0, hi, lo_open=True, hint=hint)


NON_NEGATIVE = Number(float, 0.0)
SHARE = Number(float, 0.0, 1.0)
SEED = count(0, 2**32 - 1)
THREADS = count(1, 256)
SIZE = {name: count(lo, hi) for name, (lo, hi) in SPACE_LIMITS.items()}  # --resolution, --num-classes, ...
MAX_HIDDEN = 256  # the PruningNet's MLP outputs whole kernels: 8x the paper's 32 is already ~5 GB at 224


class TrainDevice(click.ParamType):
    """``auto``, ``cpu`` or ``cuda[:N]``, refused at once when this host cannot train there."""

    name = "device"

    def convert(self, value, param, ctx):
        from ..pruning.distributed import check_device

        try:
            return check_device(value)
        except ParamError as e:
            self.fail(e.problem, param, ctx)


def space_options(multiple_help: str = "Round every width to a multiple of this (devices prefer 8 or 16).",
                  multiple_default: int | None = 1):
    """The options that pick a channel space, shared by every command that builds one."""
    def wrap(f):
        for opt in reversed([
            click.option("--resolution", type=SIZE["resolution"], default=None,
                         help="Input size (default 224, or 8 with --small-input)."),
            click.option("--num-classes", type=SIZE["num_classes"], default=1000, show_default=True),
            click.option("--in-channels", type=SIZE["in_channels"], default=3, show_default=True,
                         help="Image channels (1 for gray)."),
            click.option("--small-input", is_flag=True, help="Stem for 8x8..32x32 images: total stride 8, not 32."),
            click.option("--multiple", type=SIZE["multiple"], default=multiple_default,
                         show_default=multiple_default is not None, help=multiple_help),
            click.option("--rounding", type=click.Choice(["round", "floor"]), default="round", show_default=True,
                         help="Grid widths: round(ratio x base) to the multiple, or MetaPruning's int(base x "
                              "(10 + 3i) / 100) (floor: its released archs; needs --multiple 1)."),
        ]):
            f = opt(f)
        return f
    return wrap


def make_space(family: str, resolution, num_classes, in_channels, small_input, multiple, rounding="round"):
    from ..pruning.space import get_space

    if resolution is None:
        resolution = 8 if small_input else 224
    return get_space(family, resolution=resolution, num_classes=num_classes, in_channels=in_channels,
                     small_input=small_input, multiple=multiple, rounding=rounding)


def force_option(what: str = "the outputs"):
    """``--force``: replace existing outputs (the output policy, ``outputs.py``)."""
    return click.option("--force", is_flag=True, help=f"Replace {what} when they exist (default: refuse).")


def remote_options(f):
    """``--host`` (repeatable: identical boards share the work) and how ssh reaches the boards."""
    def ssh_setting(ctx, param, value):
        if value:
            from ..latency.remote import use_ssh_options

            use_ssh_options(**{param.name: value})
        return value

    for opt in reversed([
        click.option("--host", multiple=True, metavar="[USER@]HOST",
                     help="Measure on this board over ssh (a ~/.ssh/config alias works); repeat for several "
                          "identical boards. Default: the device profile's host, else this machine."),
        click.option("--remote-python", metavar="CMD", expose_value=False, callback=ssh_setting,
                     help="The board's Python, with numpy and the runtime (default python3).", is_eager=True),
        click.option("--ssh-config", type=click.Path(dir_okay=False), expose_value=False, callback=ssh_setting,
                     help="ssh config file to use instead of ~/.ssh/config.", is_eager=True),
        click.option("--no-host-key-check", is_flag=True, expose_value=False, callback=ssh_setting, is_eager=True,
                     help="Do not verify the board's ssh host key (insecure: throwaway boards only)."),
    ]):
        f = opt(f)
    return f


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")(f)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2))


def parse_range(text: str | None, option: str, scale: float = 1.0) -> tuple[float, float] | None:
    """``"LO:HI"`` -> (LO*scale, HI*scale), or UserError naming the option."""
    if text is None:
        return None
    try:
        lo, hi = (float(v) * scale for v in text.split(":"))
    except ValueError:
        raise UserError(f"{option} expects LO:HI (two numbers), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
        raise UserError(f"{option} {text}: need finite 0 <= LO <= HI")
    return lo, hi
