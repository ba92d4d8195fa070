"""The ``prune-lut`` click group: logging, and every UserError or bad option below it as one line, exit code 2."""
from __future__ import annotations

import logging
import re
import sys

import click

from ..errors import ParamError, UserError


def option_name(param: str) -> str:
    """The option that sets a library parameter: every option is named after its parameter."""
    return "--" + param.replace("_", "-")


def usage_line(e: click.UsageError) -> str:
    """A bad option as one line: ``--lr must be a finite number > 0, got nan`` (click prints a usage block)."""
    param = getattr(e, "param", None)
    if isinstance(e, click.BadParameter) and not isinstance(e, click.MissingParameter) and getattr(param, "opts", None):
        name = max(param.opts, key=len) if param.param_type_name == "option" else param.human_readable_name
        return f"{name} {e.message}"
    return e.format_message()


def fail(message: str) -> None:
    """``error: MESSAGE`` as one line on stderr, exit code 2."""
    click.echo("error: " + re.sub(r"\s*\n\s*", " ", message.strip()), err=True)
    sys.exit(2)


class Group(click.Group):
    """Turns a UserError anywhere below into one line on stderr and exit code 2 (a ParamError names
    the option, not the library's parameter), and so a bad option (click's usage errors) too."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ParamError as e:
            fail(e.for_option(option_name(e.param)))
        except UserError as e:
            fail(str(e))
        except click.BadParameter as e:  # names the option and the allowed values
            fail(usage_line(e))
        except click.UsageError as e:
            fail(f"{usage_line(e)} (see --help)")


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="prune-lut")
def main(verbose: int) -> None:
    """Latency lookup tables per device, and MetaPruning channel search under a latency budget."""
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
