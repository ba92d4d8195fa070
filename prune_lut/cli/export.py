"""``prune-lut export``: a pruned network as ONNX or a PyTorch state dict."""
from __future__ import annotations

import random

import click

from ..errors import UserError
from ..outputs import Output, check_outputs
from .app import main
from .options import SEED, Number, count, force_option, make_space, space_options


@main.command()
@click.argument("arch_file", required=False, type=click.Path())
@click.option("--family", help="Build an arch of this family instead of reading ARCH_FILE.")
@click.option("--uniform", type=Number(float, 0.0, 1.0, lo_open=True),
              help="With --family: every gene at this ratio of its base width.")
@click.option("--random", "rand", is_flag=True, help="With --family: a random arch on the grid.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for --random.")
@space_options()
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch"]), default="onnx", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Output file.")
@click.option("--arch-out", type=click.Path(), help="Also write the arch JSON here.")
@click.option("--result", "result_file", type=click.Path(), help="Export an arch of this `search` result instead.")
@click.option("--rank", type=count(1), help="With --result: 1 = best, K = K-th best (default: the winner "
              "measured by `search --verify` where the result has one, else 1).")
@click.option("--weights", type=click.Choice(["fresh", "pruningnet"]), default="fresh", show_default=True,
              help="With --result: fresh initialization, or the PruningNet's weights (BN recalibrated).")
@click.option("--checkpoint", type=click.Path(), help="With --weights pruningnet: the PruningNet checkpoint "
              "(default: the one the search used).")
@force_option("an existing --out or --arch-out")
def export(arch_file, family, uniform, rand, seed, resolution, num_classes, in_channels, small_input, multiple, rounding,
           fmt, out, arch_out, result_file, rank, weights, checkpoint, force):
    """Export a pruned network as ONNX or a PyTorch state dict: an arch file, a --family member
    (fresh weights), or the K-th arch of a search --result (fresh or PruningNet weights)."""
    from ..pruning.arch import load_arch, save_arch
    from ..pruning.export import export_arch

    inputs = [("ARCH_FILE", arch_file), ("--result", result_file), ("--checkpoint", checkpoint)]
    if result_file is not None and weights == "pruningnet" and checkpoint is None:
        from ..pruning.search import load_result

        inputs.append(("the search's checkpoint", load_result(result_file).get("checkpoint")))
    check_outputs([Output("--out", out, replace=force), Output("--arch-out", arch_out, replace=force)], inputs)
    if result_file is not None:
        if arch_file is not None or family is not None:
            raise UserError("give one of ARCH_FILE, --family or --result")
        from ..pruning.search import export_result

        sp, arch, entry = export_result(result_file, out, rank, fmt, weights, checkpoint, arch_out)
        lat = ", ".join(f"{v:.4g} ms on {d}" for d, v in entry["latency_ms"].items())
        click.echo(f"wrote {out} ({fmt}, {weights} weights): rank {entry['rank']} of {result_file}, {sp.family}, "
                   f"{sp.macs(arch) / 1e6:.2f} M MACs, predicted {lat}, search accuracy {entry['accuracy']:.2%}")
        return
    if weights != "fresh" or checkpoint is not None:
        raise UserError("--weights pruningnet and --checkpoint go with --result")
    if (arch_file is None) == (family is None):
        raise UserError("give either ARCH_FILE or --family (with --uniform RATIO or --random)")
    if arch_file is not None:
        sp, arch = load_arch(arch_file)
    else:
        if (uniform is None) == (not rand):
            raise UserError("with --family, give exactly one of --uniform RATIO or --random")
        sp = make_space(family, resolution, num_classes, in_channels, small_input, multiple, rounding)
        arch = sp.uniform(uniform) if uniform is not None else sp.random(random.Random(seed))
    export_arch(out, sp, arch, fmt=fmt)
    if arch_out:
        save_arch(arch_out, sp, arch)
    click.echo(f"wrote {out} ({fmt}): {sp.family}, {sp.macs(arch) / 1e6:.2f} M MACs, {sp.params(arch) / 1e6:.3f} M params")
