"""``prune-lut validate`` (a table's error on its device now) and ``prune-lut calibrate`` (adapt it)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import UserError
from .app import main
from .options import NON_NEGATIVE, SEED, SHARE, count, echo_json, force_option, remote_options
from .render import validation_lines


def _measure_options(samples_default: int):
    def wrap(f):
        for opt in reversed([
            click.option("--lut", "lut_path", type=click.Path(), help="LUT file (.json.gz)."),
            click.option("--samples", type=count(1, 10_000), default=samples_default, show_default=True,
                         help="Archs to measure."),
            click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for sampling and order."),
            click.option("--repeat-share", type=SHARE, default=0.2, show_default=True,
                         help="Share of archs measured twice (noise floor)."),
            click.option("--plot", "plot_path", type=click.Path(), help="Write a PNG: predicted vs measured, MACs beside."),
            click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the report)."),
            remote_options,
            click.option("--record", "record_path", type=click.Path(),
                         help="Where to write the samples (default: a new <LUT>.<command>-<time>.json beside the LUT)."),
            click.option("--drift", type=click.Choice(["none", "local"]), default="none", show_default=True,
                         help="local: scale each call by the run's median reference over the neighbouring calls' "
                              "(takes a slow minute out of the run; stays in this device's milliseconds)."),
            force_option("an existing --record, --plot (or calibrate's --out)"),
        ]):
            f = opt(f)
        return f
    return wrap


def _check_outputs(lut_path, record_path, plot_path, force, out=None, from_record=None) -> None:
    """The output policy (``outputs.py``) for a run's record, plot and (calibrate) calibrated table,
    before anything is measured; the default record goes beside the table, so that folder too."""
    from ..outputs import Output, check_outputs, same_file, writable_folder

    if out is not None and lut_path is not None and same_file(out, lut_path):
        out = None  # --out onto --lut: the calibration goes into the table, as without --out
    check_outputs([Output("--record", record_path, replace=force), Output("--plot", plot_path, replace=force),
                   Output("--out", out, replace=force)], [("--lut", lut_path), ("--from-record", from_record)])
    if lut_path is not None and record_path is None:
        writable_folder(Path(lut_path).parent, "the record (beside --lut by default; or give --record)")


def _show(rec: dict, from_record, plot_path, as_json) -> None:
    from ..latency.report import plot
    from ..latency.validate import headline_predictions

    rep = rec["report"]
    for w in rec.get("warnings", []):
        click.echo(f"warning: {w}", err=True)
    if plot_path:
        p, m, macs = headline_predictions(rec)
        plot(plot_path, p, m, macs, None,
             title=f"{rec['lut_space'].get('family')} at {rec['lut_space'].get('resolution')} on "
                   f"{(rec.get('device') or {}).get('name')}, {rec['date'][:10]}: {rep['headline_name']}")
    if as_json:
        echo_json({"record": rec.get("record_path", from_record), "lut": rec.get("lut"), "warnings": rec["warnings"],
                   "seconds": rec.get("seconds"), "frame": rec.get("frame"), "calibration": rec.get("calibration"),
                   "report": rep})
    else:
        click.echo("\n".join(validation_lines(rec, from_record)))
        if plot_path:
            click.echo(f"wrote {plot_path}")


def _moved(ctx, param, value):
    if value:
        raise UserError(f"validate no longer fits a calibration: `prune-lut calibrate --lut TABLE` measures "
                        f"the device as it runs now and stores one ({param.opts[0]} is gone)")
    return value


@main.command()
@_measure_options(50)
@click.option("--max-error", type=NON_NEGATIVE, help="Exit 1 when the mean absolute % error exceeds this.")
@click.option("--from-record", type=click.Path(), help="Recompute the report from a record; measure nothing.")
@click.option("--fit", is_flag=True, hidden=True, expose_value=False, callback=_moved)
@click.option("--fit-share", hidden=True, expose_value=False, callback=_moved)
def validate(lut_path, samples, seed, repeat_share, plot_path, as_json, host, record_path, drift, force, max_error,
             from_record):
    """Measure sampled archs end to end on the LUT's device now and report the table's error in its frame."""
    from ..latency.validate import exceeds
    from ..tables.validate import load_record, validate_table

    if (lut_path is None) == (from_record is None):
        raise UserError("give --lut FILE (to measure) or --from-record FILE (to recompute a report)")
    if from_record and record_path:
        raise UserError("--record names where a measuring run writes its record; --from-record measures nothing")
    _check_outputs(lut_path, record_path, plot_path, force, from_record=from_record)
    if from_record:
        rec = load_record(from_record)
    else:
        rec = validate_table(lut_path, samples, seed, host, repeat_share, record_path, drift, progress=not as_json)
    _show(rec, from_record, plot_path, as_json)
    if max_error is not None and exceeds(rec, max_error):
        click.echo(f"error: mean absolute error {rec['report']['headline'].get('mean_abs_pct', float('nan')):.1f}% "
                   f"exceeds --max-error {max_error}%", err=True)
        sys.exit(1)


@main.command()
@_measure_options(30)
@click.option("--out", type=click.Path(), help="Write the calibrated table here (default: into --lut).")
def calibrate(lut_path, samples, seed, repeat_share, plot_path, as_json, host, record_path, drift, force, out):
    """Adapt a table to its device as it runs now: measure sampled archs end to end, fit the calibration
    that predicts them best out of fold, and store it with this device's frame in the table."""
    from ..tables.validate import calibrate_table

    if lut_path is None:
        raise UserError("give --lut FILE, the table to calibrate")
    _check_outputs(lut_path, record_path, plot_path, force, out)
    rec = calibrate_table(lut_path, samples, seed, host, repeat_share, record_path, out, drift, progress=not as_json)
    _show(rec, None, plot_path, as_json)
