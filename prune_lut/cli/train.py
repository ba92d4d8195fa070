"""``prune-lut train`` (a PruningNet) and ``prune-lut retrain`` (a pruned network from scratch)."""
from __future__ import annotations

import os

import click

from ..errors import UserError
from ..outputs import Output, check_outputs
from .app import main
from .options import MAX_HIDDEN, NON_NEGATIVE, SEED, SIZE, TrainDevice, count, echo_json, parse_range, positive
from .render import training_lines

EPOCHS, BATCH = count(1, 100_000), count(1, 1 << 20)
VAL_PER_CLASS = count(1, hint="; leave it out for the data set's default (digits 20, Fashion-MNIST and CIFAR-10 "
                              "100, image folders 50)")
TRAIN_PER_CLASS = count(1, hint="; leave it out to train on the whole training set")


def _check_checkpoint_outputs(out, resume: bool, inputs) -> None:
    """The output policy (``outputs.py``) for a training run: its checkpoint (continued with --resume,
    never replaced otherwise) and the log appended beside it, before any data is loaded."""
    check_outputs([Output("--out", out, replace=resume, hint="pass --resume to continue it, or choose another --out"),
                   Output("--out", f"{out}.log", replace=True, name="the training log beside --out")], inputs)


def _report(res, as_json: bool) -> None:
    if os.environ.get("RANK", "0") != "0":
        return
    if as_json:
        last = res.history[-1] if res.history else {}
        echo_json({"checkpoint": str(res.path), "epochs": res.header["epoch"], "space_hash": res.header["space_hash"],
                   "data": res.header["data"], "last_epoch": last, "test_acc": res.test_acc})
        return
    click.echo("\n".join(training_lines(res)))


@main.command()
@click.option("--family", required=True, help="Model family (see `prune-lut space`).")
@click.option("--data", "data_spec", default="digits", show_default=True,
              help="digits | fashion-mnist[:DIR] | cifar10:DIR | imagefolder:DIR (local files only).")
@click.option("--resolution", type=SIZE["resolution"], help="Resize images to this size (default: the data's own).")
@click.option("--small-input/--standard-input", default=None,
              help="Stem for small images (default: small-input below 64 pixels).")
@click.option("--multiple", type=SIZE["multiple"], default=1, show_default=True,
              help="Round every width to a multiple of this.")
@click.option("--val-per-class", type=VAL_PER_CLASS, help="Sub-validation images held out per class (default per data set).")
@click.option("--train-per-class", type=TRAIN_PER_CLASS,
              help="Train on a class-balanced subset of this many images per class (default: all).")
@click.option("--epochs", type=EPOCHS, help="Epochs (default 10).")
@click.option("--batch-size", type=BATCH, help="Global batch size, shared by all processes (default 128).")
@click.option("--lr", type=positive(), help="Peak learning rate of the cosine schedule (default 0.05).")
@click.option("--weight-decay", type=NON_NEGATIVE, help="On the PruningBlocks' weights (default 5e-4).")
@click.option("--hidden", type=count(1, MAX_HIDDEN), help="Hidden units of each PruningBlock's MLP (default 32, as the paper).")
@click.option("--seed", type=SEED, help="Seeds the split, the data order and the coding vectors (default 0).")
@click.option("--out", default="pruningnet.pt", show_default=True, type=click.Path(), help="Checkpoint file.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint at --out exactly where it stopped.")
@click.option("--lut", "lut_path", type=click.Path(), help="LUT for --latency-range.")
@click.option("--latency-range", help="LO:HI ms: train only on archs the LUT predicts in this range.")
@click.option("--macs-range", help="LO:HI millions of MACs: train only on archs in this range.")
@click.option("--rule", type=click.Choice(["sandwich", "widest", "alternate", "random"]), default=None,
              help="Archs per step: widest = the widest and --random-archs random ones (default); sandwich = "
                   "the widest, the smallest and --random-archs random ones; alternate = widest on even steps, "
                   "random on odd; random = one random arch (the paper's).")
@click.option("--random-archs", type=click.IntRange(0, 16), default=None,
              help="With --rule widest or sandwich: random archs per step beside the fixed ones (default 3 and 2: "
                   "4 archs per step).")
@click.option("--distill/--no-distill", default=None,
              help="With --rule sandwich or widest: pruned archs learn from the widest's soft predictions "
                   "(default: off).")
@click.option("--draws", type=click.Choice(["level", "narrow", "uniform"]), default=None,
              help="Random archs: around a random size, as the search draws them (default: every size trained as "
                   "often), the same with small sizes more often, or each gene uniform (the paper's).")
@click.option("--bn", type=click.Choice(["choice", "shared"]), default=None,
              help="BatchNorm per output-width choice (default, as the reference) or one shared per conv.")
@click.option("--val-archs", type=click.Choice(["full", "full+smallest", "none"]), default="full", show_default=True,
              help="Generated networks scored on sub-val after each epoch (after BatchNorm recalibration).")
@click.option("--device", type=TrainDevice(), default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def train(family, data_spec, resolution, small_input, multiple, val_per_class, train_per_class, epochs, batch_size, lr,
          weight_decay, hidden, seed, out, resume, lut_path, latency_range, macs_range, rule, random_archs, distill,
          draws, bn, val_archs, device, no_progress, as_json):
    """Meta-train a PruningNet for FAMILY on --data (by default the widest and three random coding
    vectors per step, drawn around random sizes, gradients accumulated); resumable.

    Multi-process: `torchrun --nproc-per-node N -m prune_lut.cli train ...`."""
    from ..pruning import train as tr

    if latency_range and macs_range:
        raise UserError("give --latency-range or --macs-range, not both")
    lat = parse_range(latency_range, "--latency-range")
    macs = parse_range(macs_range, "--macs-range", 1e6)
    _check_checkpoint_outputs(out, resume, [("--lut", lut_path)])
    ck = tr.resume_checkpoint(out, resume)
    data = tr.data_for(data_spec, ck, resolution, val_per_class, seed, train_per_class)
    sp = tr.space_for_data(family, data, small_input, multiple)
    res = tr.train_pruningnet(sp, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, out=out, resume=resume,
                              hidden=hidden, weight_decay=weight_decay, macs_range=macs, latency_range=lat,
                              lut=lut_path, progress=not no_progress, device=device, score_archs=val_archs,
                              rule=rule, random_archs=random_archs, distill=distill, bn=bn, draws=draws,
                              checkpoint=ck)
    _report(res, as_json)


@main.command()
@click.argument("arch_file", type=click.Path())
@click.option("--data", "data_spec", default="digits", show_default=True, help="As for `train`.")
@click.option("--epochs", type=EPOCHS, help="Epochs (default 10).")
@click.option("--batch-size", type=BATCH, help="Global batch size (default 128).")
@click.option("--lr", type=positive(), help="Peak learning rate (default 0.05).")
@click.option("--weight-decay", type=NON_NEGATIVE, help="On conv and linear weights (default 5e-4).")
@click.option("--seed", type=SEED, help="Seeds the initialization and the data order (default 0).")
@click.option("--out", default="retrain.pt", show_default=True, type=click.Path(), help="Checkpoint file.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint at --out.")
@click.option("--init", "init", help="pruningnet:CKPT starts from the PruningNet's generated weights.")
@click.option("--holdout", is_flag=True, help="Keep the sub-validation split out of training and score it.")
@click.option("--device", type=TrainDevice(), default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def retrain(arch_file, data_spec, epochs, batch_size, lr, weight_decay, seed, out, resume, init, holdout, device,
            no_progress, as_json):
    """Train the pruned network of ARCH_FILE (arch JSON) from scratch and report its test accuracy."""
    from ..pruning import train as tr
    from ..pruning.arch import load_arch

    if init is not None and not init.startswith("pruningnet:"):
        raise UserError(f"--init {init!r}: expected pruningnet:CKPT")
    init_ckpt = init[len("pruningnet:"):] if init else None
    _check_checkpoint_outputs(out, resume, [("ARCH_FILE", arch_file), ("--init", init_ckpt)])
    sp, arch = load_arch(arch_file)
    ck = tr.resume_checkpoint(out, resume)
    data = tr.data_for(data_spec, ck, sp.resolution, None, seed)
    res = tr.train_plain(sp, arch, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, out=out,
                         resume=resume, weight_decay=weight_decay, init=init_ckpt,
                         progress=not no_progress, device=device, holdout=holdout, checkpoint=ck)
    _report(res, as_json)
