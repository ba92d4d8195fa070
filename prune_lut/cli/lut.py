"""``prune-lut lut info|merge``: inspect and combine table files."""
from __future__ import annotations

import click

from ..outputs import Output, check_inputs_distinct, check_outputs
from .app import main
from .options import echo_json, force_option, json_option
from .render import lut_info_lines


@main.group()
def lut():
    """Inspect and combine LUT files."""


def _info(lut, path) -> dict:
    """``lutops.info`` with the coverage counted against the table's space: an entry whose key no arch
    of the space produces (renamed, or from another space) covers nothing."""
    from ..errors import UserError
    from ..latency.lutops import info
    from ..tables.coverage import table_coverage
    from ..tables.validate import table_space

    i = info(lut)
    if lut.space.get("family") is None:  # a table of layer specs that no family of this prune-lut made
        return i
    try:
        space = table_space(lut, str(path))
    except UserError as e:  # counted by entries alone; validate, calibrate and search refuse such a table
        click.echo(f"warning: {e}", err=True)
        return i
    c = i["coverage"]
    c.update(table_coverage(space, lut.entries))
    c["complete"] = c["space_keys"] is not None and c["in_space"] >= c["space_keys"]
    return i


@lut.command("info")
@click.argument("path", type=click.Path())
@json_option
def lut_info(path, as_json):
    """Provenance, coverage and error figures of a LUT file."""
    from ..latency.lutfile import LUT

    i = _info(LUT.load(path), path)
    if as_json:
        echo_json(i)
    else:
        click.echo("\n".join(lut_info_lines(path, i)))


@lut.command("merge")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(), help="The merged LUT file.")
@force_option("an existing --out")
def lut_merge(paths, out, force):
    """Join shards built on identical boards (same device, space and runtimes) into one table."""
    from ..latency.lutfile import LUT
    from ..latency.lutops import merge

    inputs = [(f"input {i + 1}", p) for i, p in enumerate(paths)]
    check_inputs_distinct(inputs)
    check_outputs([Output("--out", out, replace=force)], inputs)
    m = merge([LUT.load(p) for p in paths], list(paths))
    m.save(out)
    c = len(m.entries)
    total = m.space.get("keys")
    click.echo(f"wrote {out}: {c} entries ({len(m.measured_keys())} measured) of {total} keys from {len(paths)} files"
               + ("" if total is None or c >= total else f" (INCOMPLETE: {total - c} keys missing; merge the other "
                                                        "shards too)"))
