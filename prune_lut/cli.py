"""The `prune-lut` command line: argument handling and printing only; the work lives in the packages."""
from __future__ import annotations

import json
import logging
import random
import sys

import click

from .errors import UserError


class Group(click.Group):
    """Turns a UserError anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="prune-lut")
def main(verbose: int) -> None:
    """Latency lookup tables per device, and MetaPruning channel search under a latency budget."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")


def space_options(f):
    """The options that pick a channel space, shared by every command that builds one."""
    for opt in reversed([
        click.option("--resolution", type=int, default=None, help="Input size (default 224, or 8 with --small-input)."),
        click.option("--num-classes", type=int, default=1000, show_default=True),
        click.option("--in-channels", type=int, default=3, show_default=True, help="Image channels (1 for gray)."),
        click.option("--small-input", is_flag=True, help="Stem for 8x8..32x32 images: total stride 8, not 32."),
        click.option("--multiple", type=int, default=1, show_default=True,
                     help="Round every width to a multiple of this (devices prefer 8 or 16)."),
    ]):
        f = opt(f)
    return f


def make_space(family: str, resolution, num_classes, in_channels, small_input, multiple):
    from .pruning.space import get_space

    if resolution is None:
        resolution = 8 if small_input else 224
    return get_space(family, resolution=resolution, num_classes=num_classes, in_channels=in_channels,
                     small_input=small_input, multiple=multiple)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2))


@main.command()
@click.argument("family")
@space_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def space(family, resolution, num_classes, in_channels, small_input, multiple, as_json):
    """Show FAMILY's genes, their allowed widths, and the full and smallest member's MACs and params."""
    sp = make_space(family, resolution, num_classes, in_channels, small_input, multiple)
    members = {name: {"macs": sp.macs(a), "params": sp.params(a)} for name, a in
               (("full", sp.full()), ("smallest", sp.smallest()))}
    if as_json:
        echo_json({"space": sp.describe(), "hash": sp.hash, "members": members,
                   "genes": [{"name": g.name, "kind": g.kind, "base": g.base, "choices": list(g.choices)}
                             for g in sp.genes.values()]})
        return
    click.echo(f"{family}  resolution {sp.resolution}  classes {sp.num_classes}  "
               f"{'small-input stem  ' if sp.small_input else ''}multiple {sp.multiple}  hash {sp.hash}")
    click.echo(f"{len(sp.genes)} genes:")
    for g in sp.genes.values():
        ch = list(g.choices)
        shown = ", ".join(map(str, ch)) if len(ch) <= 8 else f"{ch[0]}, {ch[1]}, {ch[2]}, ..., {ch[-2]}, {ch[-1]}"
        click.echo(f"  {g.name:<16} {g.kind:<6} base {g.base:>5}  {len(ch):>2} widths: {shown}")
    for name, m in members.items():
        click.echo(f"{name:>9}: {m['macs'] / 1e6:10.2f} M MACs  {m['params'] / 1e6:8.3f} M params")


@main.command()
@click.argument("arch_file", required=False, type=click.Path())
@click.option("--family", help="Build an arch of this family instead of reading ARCH_FILE.")
@click.option("--uniform", type=float, help="With --family: every gene at this ratio of its base width.")
@click.option("--random", "rand", is_flag=True, help="With --family: a random arch on the grid.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --random.")
@space_options
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch"]), default="onnx", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Output file.")
@click.option("--arch-out", type=click.Path(), help="Also write the arch JSON here.")
def export(arch_file, family, uniform, rand, seed, resolution, num_classes, in_channels, small_input, multiple,
           fmt, out, arch_out):
    """Export a pruned network (freshly initialized) as ONNX or a PyTorch state dict."""
    from .pruning.arch import load_arch, save_arch
    from .pruning.export import save_onnx, save_torch
    from .pruning.net import build_net

    if (arch_file is None) == (family is None):
        raise UserError("give either ARCH_FILE or --family (with --uniform RATIO or --random)")
    if arch_file is not None:
        sp, arch = load_arch(arch_file)
    else:
        if (uniform is None) == (not rand):
            raise UserError("with --family, give exactly one of --uniform RATIO or --random")
        sp = make_space(family, resolution, num_classes, in_channels, small_input, multiple)
        arch = sp.uniform(uniform) if uniform is not None else sp.random(random.Random(seed))
    net = build_net(sp, arch).eval()
    (save_onnx if fmt == "onnx" else save_torch)(out, sp, net)
    if arch_out:
        save_arch(arch_out, sp, arch)
    click.echo(f"wrote {out} ({fmt}): {sp.family}, {sp.macs(arch) / 1e6:.2f} M MACs, {sp.params(arch) / 1e6:.3f} M params")


if __name__ == "__main__":
    main()
