"""Options several commands share, and the small conversions argument handling needs."""
from __future__ import annotations

import json

import click

from ..errors import UserError


def space_options(multiple_help: str = "Round every width to a multiple of this (devices prefer 8 or 16).",
                  multiple_default: int | None = 1):
    """The options that pick a channel space, shared by every command that builds one."""
    def wrap(f):
        for opt in reversed([
            click.option("--resolution", type=int, default=None,
                         help="Input size (default 224, or 8 with --small-input)."),
            click.option("--num-classes", type=int, default=1000, show_default=True),
            click.option("--in-channels", type=int, default=3, show_default=True, help="Image channels (1 for gray)."),
            click.option("--small-input", is_flag=True, help="Stem for 8x8..32x32 images: total stride 8, not 32."),
            click.option("--multiple", type=int, default=multiple_default, show_default=multiple_default is not None,
                         help=multiple_help),
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
    if not 0 <= lo <= hi:
        raise UserError(f"{option} {text}: need 0 <= LO <= HI")
    return lo, hi
