"""The ``prune-lut`` click group: logging, and every UserError below it as one line, exit code 2."""
from __future__ import annotations

import logging
import sys

import click

from ..errors import ParamError, UserError


def option_name(param: str) -> str:
    """The option that sets a library parameter: every option is named after its parameter."""
    return "--" + param.replace("_", "-")


class Group(click.Group):
    """Turns a UserError anywhere below into one line on stderr and exit code 2 (a ParamError names
    the option, not the library's parameter)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ParamError as e:
            click.echo(f"error: {e.for_option(option_name(e.param))}", err=True)
            sys.exit(2)
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
