"""``prune-lut space``: a family's genes and widths."""
from __future__ import annotations

import click

from .app import main
from .options import echo_json, json_option, make_space, space_options


@main.command()
@click.argument("family")
@space_options()
@json_option
def space(family, resolution, num_classes, in_channels, small_input, multiple, rounding, as_json):
    """Show FAMILY's genes, their allowed widths, and the full and smallest member's MACs and params."""
    sp = make_space(family, resolution, num_classes, in_channels, small_input, multiple, rounding)
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
