"""``prune-lut search``: MetaPruning's evolution under latency budgets, from a PruningNet checkpoint."""
from __future__ import annotations

import click

from .app import main
from .options import echo_json, remote_options
from .render import search_lines


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="PruningNet checkpoint (`prune-lut train --out`).")
@click.option("--lut", "luts", multiple=True, type=click.Path(), help="A device's lookup table (repeat for several devices).")
@click.option("--latency-ms", "latency_ms", multiple=True, type=float, help="Budget on the matching --lut's device.")
@click.option("--macs-m", type=float, help="Also keep under this many million MACs.")
@click.option("--population", type=int, default=50, show_default=True)
@click.option("--generations", type=int, default=20, show_default=True)
@click.option("--parents", type=int, default=10, show_default=True, help="Top-k kept as parents (and reported).")
@click.option("--mutation-prob", type=float, default=0.1, show_default=True)
@click.option("--recal-batches", type=int, default=4, show_default=True, help="Sub-train batches for BN recalibration.")
@click.option("--recal-batch-size", type=int, default=128, show_default=True)
@click.option("--threads", type=int, default=1, show_default=True,
              help="Torch threads per process (small nets: use torchrun processes for more cores).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", default="result.json", show_default=True, type=click.Path(), help="Result JSON.")
@click.option("--resume", is_flag=True, help="Continue an interrupted search (state beside --out).")
@click.option("--plot", type=click.Path(), help="PNG of every arch evaluated, Pareto front, budget, baseline.")
@click.option("--verify", type=int, default=0, show_default=True,
              help="Measure the best K archs on each budget's device (here, or on a board over ssh: "
                   "--host, or the profile's host); the winner is the best one that meets every budget as measured.")
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON.")
def search(checkpoint, luts, latency_ms, macs_m, population, generations, parents, mutation_prob, recal_batches,
           recal_batch_size, threads, seed, out, resume, plot, verify, host, as_json):
    """Evolutionary search for the most accurate arch under latency budgets (one per --lut device).

    Runs under torchrun too: `torchrun --nproc-per-node 2 -m prune_lut.cli search ...` splits each
    generation's evaluations across the processes (same result as one process).
    """
    from ..errors import UserError
    from ..pruning.evolution import EvolutionConfig
    from ..pruning.search import search_checkpoint
    from ..tables.verify import Verifier

    cfg = EvolutionConfig(population=population, generations=generations, parents=parents,
                          mutation_prob=mutation_prob, seed=seed)
    cfg.check()
    if verify < 0:
        raise UserError(f"--verify must be >= 0 (0: no measurement), got {verify}")
    if recal_batches < 1 or recal_batch_size < 1:
        raise UserError("--recal-batches and --recal-batch-size must be >= 1")
    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    res = search_checkpoint(checkpoint, luts, latency_ms, cfg, out, macs_m=macs_m, resume=resume, plot=plot,
                            recal_batches=recal_batches, recal_batch_size=recal_batch_size, threads=threads,
                            progress=say, verifier=Verifier(verify, host) if verify else None)
    if not res:
        return
    if as_json:
        echo_json(res)
        return
    lines, warnings = search_lines(res, out, plot)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo("\n".join(lines))
