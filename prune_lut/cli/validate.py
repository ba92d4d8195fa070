"""``prune-lut validate``: a table's error on its device, measured end to end."""
from __future__ import annotations

import sys

import click

from ..errors import UserError
from .app import main
from .options import echo_json, remote_options
from .render import validation_lines


@main.command()
@click.option("--lut", "lut_path", type=click.Path(), help="LUT file to validate (.json.gz).")
@click.option("--samples", type=int, default=50, show_default=True, help="Archs to measure.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for sampling, order and split.")
@click.option("--fit", is_flag=True, help="Fit a calibration on part of the samples; store it in the LUT.")
@click.option("--fit-share", type=float, default=0.5, show_default=True, help="With --fit: share used for fitting.")
@click.option("--repeat-share", type=float, default=0.2, show_default=True,
              help="Share of archs measured twice (noise floor).")
@click.option("--plot", "plot_path", type=click.Path(), help="Write a PNG: predicted vs measured, MACs beside.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (the report).")
@click.option("--max-error", type=float, help="Exit 1 when the mean absolute % error exceeds this.")
@remote_options
@click.option("--record", "record_path", type=click.Path(),
              help="Where to write the samples (default: <LUT>.validation.json beside the LUT).")
@click.option("--from-record", type=click.Path(), help="Recompute the report from a record; measure nothing.")
@click.option("--drift", type=click.Choice(["global", "local", "none"]), default="global", show_default=True,
              help="Scale measurements by the LUT's reference over the run's median reference (global), "
                   "over the neighbouring calls' (local), or not at all.")
def validate(lut_path, samples, seed, fit, fit_share, repeat_share, plot_path, as_json, max_error, host, record_path,
             from_record, drift):
    """Measure sampled archs end to end on the LUT's device and report the table's error."""
    from ..latency.report import plot
    from ..latency.validate import exceeds, headline_predictions
    from ..tables.validate import load_record, validate_table

    if (lut_path is None) == (from_record is None):
        raise UserError("give --lut FILE (to measure) or --from-record FILE (to recompute a report)")
    if from_record:
        rec = load_record(from_record)
    else:
        rec = validate_table(lut_path, samples, seed, fit, host, fit_share, repeat_share, record_path, drift,
                             progress=not as_json)
    rep = rec["report"]
    for w in rec.get("warnings", []):
        click.echo(f"warning: {w}", err=True)
    if plot_path:
        p, m, macs, held = headline_predictions(rec)
        plot(plot_path, p, m, macs, held if rec.get("calibration") else None,
             title=f"{rec['lut_space'].get('family')} at {rec['lut_space'].get('resolution')} on "
                   f"{(rec.get('device') or {}).get('name')}, {rec['date'][:10]}: {rep['headline_name']}")
    if as_json:
        echo_json({"record": rec.get("record_path", from_record), "lut": rec.get("lut"), "warnings": rec["warnings"],
                   "seconds": rec.get("seconds"), "calibration": rec.get("calibration"), "report": rep})
    else:
        click.echo("\n".join(validation_lines(rec, from_record)))
        if plot_path:
            click.echo(f"wrote {plot_path}")
    if max_error is not None and exceeds(rec, max_error):
        click.echo(f"error: mean absolute error {rep['headline'].get('mean_abs_pct', float('nan')):.1f}% "
                   f"exceeds --max-error {max_error}%", err=True)
        sys.exit(1)
