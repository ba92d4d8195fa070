"""``prune-lut quickstart``: the whole loop on this CPU in minutes."""
from __future__ import annotations

import click

from .app import main
from .options import SEED, Number, count, echo_json, positive


@main.command()
@click.option("--out", default="quickstart", show_default=True, type=click.Path(), help="Output folder.")
@click.option("--data", "data_spec", type=click.Choice(["digits", "fashion-mnist"]), default="digits", show_default=True)
@click.option("--budget-share", type=Number(float, 0.0, 1.0, lo_open=True, hi_open=True), default=0.5,
              show_default=True, help="Latency budget as a share of the full network's predicted latency.")
@click.option("--epochs", type=count(1, 100_000),
              help="PruningNet epochs (default: 6 on digits, 10 on Fashion-MNIST).")
@click.option("--train-per-class", type=count(1, hint="; leave it out for the default"),
              help="Class-balanced training subset (default: all digits; 600 per class of Fashion-MNIST).")
@click.option("--population", type=count(2, 100_000), default=50, show_default=True)
@click.option("--generations", type=count(1, 100_000), default=20, show_default=True)
@click.option("--calibrate-samples", type=count(5, 10_000), default=30, show_default=True,
              help="Archs measured end to end to calibrate the table to this machine.")
@click.option("--verify", type=count(1, 1000), default=5, show_default=True,
              help="Best archs of the search measured here; the winner is the most accurate that meets the budget.")
@click.option("--retrain-from", type=click.Choice(["scratch", "pruningnet"]), default="scratch", show_default=True,
              help="Start of the winner's, the uniform arch's and the full net's retraining: scratch (the paper's "
                   "protocol) or the PruningNet's weights (fine-tuning).")
@click.option("--retrain-epochs", type=count(0, 100_000), default=10, show_default=True,
              help="Retraining epochs of each of the three (0: skip).")
@click.option("--build-lut", is_flag=True, help="Build the table on this CPU even when one ships.")
@click.option("--lut-minutes", type=positive(), help="With --build-lut: time budget for the build.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--processes", type=count(1, 256), default=None,
              help="Processes (one torch thread each) that share the search's evaluations (default: one per core, "
                   "at most 4; the same result with any number).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON.")
def quickstart(out, data_spec, budget_share, epochs, train_per_class, population, generations, calibrate_samples,
               verify, retrain_from, retrain_epochs, build_lut, lut_minutes, seed, processes, as_json):
    """The whole loop on this CPU in minutes: table, calibration, PruningNet, search, export, measurement."""
    from ..outputs import writable_folder
    from ..quickstart import QuickstartOptions, run_quickstart

    writable_folder(out, "--out")  # the folder holds every stage's output and is reused by design (resume)
    opt = QuickstartOptions(out=out, data=data_spec, budget_share=budget_share, epochs=epochs,
                            train_per_class=train_per_class, population=population, generations=generations,
                            calibrate_samples=calibrate_samples, verify=verify, retrain_from=retrain_from,
                            retrain_epochs=retrain_epochs, build_lut=build_lut, lut_minutes=lut_minutes, seed=seed,
                            processes=processes)
    summary = run_quickstart(opt, say=(lambda m: click.echo(m, err=True)) if as_json else click.echo)
    if as_json:
        echo_json(summary)
