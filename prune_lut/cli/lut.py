"""``prune-lut lut info|merge``: inspect and combine table files."""
from __future__ import annotations

import click

from .app import main
from .options import echo_json, json_option
from .render import lut_info_lines


@main.group()
def lut():
    """Inspect and combine LUT files."""


@lut.command("info")
@click.argument("path", type=click.Path())
@json_option
def lut_info(path, as_json):
    """Provenance, coverage and error figures of a LUT file."""
    from ..latency.lutfile import LUT
    from ..latency.lutops import info

    i = info(LUT.load(path))
    if as_json:
        echo_json(i)
    else:
        click.echo("\n".join(lut_info_lines(path, i)))


@lut.command("merge")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The merged LUT file.")
def lut_merge(paths, out):
    """Join shards built on identical boards (same device, space and runtimes) into one table."""
    from ..latency.lutfile import LUT
    from ..latency.lutops import merge

    m = merge([LUT.load(p) for p in paths], list(paths))
    m.save(out)
    c = len(m.entries)
    click.echo(f"wrote {out}: {c} entries ({len(m.measured_keys())} measured) of {m.space.get('keys')} keys "
               f"from {len(paths)} files")
