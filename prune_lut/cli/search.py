"""``prune-lut search``: MetaPruning's evolution under latency budgets, from a PruningNet checkpoint."""
from __future__ import annotations

import click

from .app import main
from .options import SEED, SHARE, THREADS, count, echo_json, force_option, positive, remote_options
from .render import search_lines


def _check_outputs(out, plot, resume: bool, force: bool, inputs) -> None:
    """The output policy (``outputs.py``) for the result, its state file and the plot: a search's own
    result and plot may be rewritten when it is resumed (its state is there), or with --force."""
    from ..outputs import Output, check_outputs
    from ..pruning.search import state_path

    state = state_path(out)
    ours = force or (resume and state.exists())
    hint = (f"pass --resume to continue the search whose state ({state.name}) is beside it, or --force to "
            "start over" if state.exists() else
            f"no search state ({state.name}) is beside it to --resume; pass --force to search again into it, "
            "or choose another {option}")
    if resume and state.exists():  # a damaged state is answered before the checkpoint and data are loaded
        from ..schemas import load

        load(state, "state")
    check_outputs([Output("--out", out, replace=ours, hint=hint),
                   Output("--out", state, replace=True, name="the search state beside --out"),
                   Output("--plot", plot, replace=ours)], inputs)


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(), help="PruningNet checkpoint (`prune-lut train --out`).")
@click.option("--lut", "luts", multiple=True, type=click.Path(), help="A device's lookup table (repeat for several devices).")
@click.option("--latency-ms", "latency_ms", multiple=True, type=positive(), help="Budget on the matching --lut's device.")
@click.option("--macs-m", type=positive(), help="Also keep under this many million MACs.")
@click.option("--population", type=count(2, 100_000), default=50, show_default=True)
@click.option("--generations", type=count(1, 100_000), default=20, show_default=True)
@click.option("--parents", type=count(1, 100_000), default=10, show_default=True,
              help="Top-k kept as parents (and reported).")
@click.option("--mutation-prob", type=SHARE, default=0.1, show_default=True)
@click.option("--recal-batches", type=count(1, 10_000), default=2, show_default=True,
              help="Sub-train batches for BN recalibration.")
@click.option("--recal-batch-size", type=count(1, 1 << 20), default=128, show_default=True)
@click.option("--threads", type=THREADS, default=1, show_default=True,
              help="Torch threads per process (small nets: use processes for more cores).")
@click.option("--processes", type=count(1, 256), default=1, show_default=True,
              help="Local processes that share each generation's evaluations (the same result; torchrun works too).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", default="result.json", show_default=True, type=click.Path(), help="Result JSON.")
@click.option("--resume", is_flag=True, help="Continue an interrupted search (state beside --out).")
@force_option("an existing --out, its state and --plot (the search starts over)")
@click.option("--plot", type=click.Path(), help="PNG of every arch evaluated, Pareto front, budget, baseline.")
@click.option("--verify", type=count(0, 1000), default=0, show_default=True,
              help="Measure the best K archs on each budget's device (here, or on a board over ssh: "
                   "--host, or the profile's host); the winner is the best one that meets every budget as measured.")
@remote_options
@click.option("--json", "as_json", is_flag=True, help="Print the result JSON.")
def search(checkpoint, luts, latency_ms, macs_m, population, generations, parents, mutation_prob, recal_batches,
           recal_batch_size, threads, processes, seed, out, resume, force, plot, verify, host, as_json):
    """Evolutionary search for the most accurate arch under latency budgets (one per --lut device).

    --processes N splits each generation's evaluations across N local processes (the same result as
    one process); so does torchrun: `torchrun --nproc-per-node 2 -m prune_lut.cli search ...`.
    """
    from ..errors import UserError
    from ..pruning.evolution import EvolutionConfig
    from ..pruning.search import search_checkpoint
    from ..tables.verify import Verifier

    cfg = EvolutionConfig(population=population, generations=generations, parents=parents,
                          mutation_prob=mutation_prob, seed=seed)
    cfg.check()
    if resume and force:
        raise UserError("give --resume (continue the search) or --force (start it over), not both")
    _check_outputs(out, plot, resume, force, [("--checkpoint", checkpoint)] + [("--lut", p) for p in luts])
    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    res = search_checkpoint(checkpoint, luts, latency_ms, cfg, out, macs_m=macs_m, resume=resume, plot=plot,
                            recal_batches=recal_batches, recal_batch_size=recal_batch_size, threads=threads,
                            progress=say, verifier=Verifier(verify, host) if verify else None, force=force,
                            processes=processes)
    if not res:
        return
    if as_json:
        echo_json(res)
        return
    lines, warnings = search_lines(res, out, plot)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo("\n".join(lines))
