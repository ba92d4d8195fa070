"""The `prune-lut` command line: argument handling and printing only; the work lives in the packages."""
from __future__ import annotations

import json
import logging
import random
import sys

import click

from .errors import UserError


class Group(click.Group):
    """Turns a UserError anywhere below into one line on stderr and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
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


def space_options(f):
    """The options that pick a channel space, shared by every command that builds one."""
    for opt in reversed([
        click.option("--resolution", type=int, default=None, help="Input size (default 224, or 8 with --small-input)."),
        click.option("--num-classes", type=int, default=1000, show_default=True),
        click.option("--in-channels", type=int, default=3, show_default=True, help="Image channels (1 for gray)."),
        click.option("--small-input", is_flag=True, help="Stem for 8x8..32x32 images: total stride 8, not 32."),
        click.option("--multiple", type=int, default=1, show_default=True,
                     help="Round every width to a multiple of this (devices prefer 8 or 16)."),
    ]):
        f = opt(f)
    return f


def make_space(family: str, resolution, num_classes, in_channels, small_input, multiple):
    from .pruning.space import get_space

    if resolution is None:
        resolution = 8 if small_input else 224
    return get_space(family, resolution=resolution, num_classes=num_classes, in_channels=in_channels,
                     small_input=small_input, multiple=multiple)


def echo_json(obj) -> None:
    click.echo(json.dumps(obj, indent=2))


def remote_options(f):
    """``--host`` (repeatable: identical boards share the work) and how ssh reaches the boards."""
    def ssh_setting(ctx, param, value):
        if value:
            from .latency.remote import use_ssh_options

            use_ssh_options(**{param.name: value})
        return value

    for opt in reversed([
        click.option("--host", multiple=True, metavar="[USER@]HOST",
                     help="Measure on this board over ssh (a ~/.ssh/config alias works); repeat for several "
                          "identical boards. Default: the device profile's host, else this machine."),
        click.option("--remote-python", metavar="CMD", expose_value=False, callback=ssh_setting,
                     help="The board's Python, with numpy and the runtime (default python3).", is_eager=True),
        click.option("--ssh-config", type=click.Path(dir_okay=False), expose_value=False, callback=ssh_setting,
                     help="ssh config file to use instead of ~/.ssh/config.", is_eager=True),
        click.option("--no-host-key-check", is_flag=True, expose_value=False, callback=ssh_setting, is_eager=True,
                     help="Do not verify the board's ssh host key (insecure: throwaway boards only)."),
    ]):
        f = opt(f)
    return f


@main.command()
@click.argument("family")
@space_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def space(family, resolution, num_classes, in_channels, small_input, multiple, as_json):
    """Show FAMILY's genes, their allowed widths, and the full and smallest member's MACs and params."""
    sp = make_space(family, resolution, num_classes, in_channels, small_input, multiple)
    members = {name: {"macs": sp.macs(a), "params": sp.params(a)} for name, a in
               (("full", sp.full()), ("smallest", sp.smallest()))}
    if as_json:
        echo_json({"space": sp.describe(), "hash": sp.hash, "members": members,
                   "genes": [{"name": g.name, "kind": g.kind, "base": g.base, "choices": list(g.choices)}
                             for g in sp.genes.values()]})
        return
    click.echo(f"{family}  resolution {sp.resolution}  classes {sp.num_classes}  "
               f"{'small-input stem  ' if sp.small_input else ''}multiple {sp.multiple}  hash {sp.hash}")
    click.echo(f"{len(sp.genes)} genes:")
    for g in sp.genes.values():
        ch = list(g.choices)
        shown = ", ".join(map(str, ch)) if len(ch) <= 8 else f"{ch[0]}, {ch[1]}, {ch[2]}, ..., {ch[-2]}, {ch[-1]}"
        click.echo(f"  {g.name:<16} {g.kind:<6} base {g.base:>5}  {len(ch):>2} widths: {shown}")
    for name, m in members.items():
        click.echo(f"{name:>9}: {m['macs'] / 1e6:10.2f} M MACs  {m['params'] / 1e6:8.3f} M params")


@main.command()
@click.argument("arch_file", required=False, type=click.Path())
@click.option("--family", help="Build an arch of this family instead of reading ARCH_FILE.")
@click.option("--uniform", type=float, help="With --family: every gene at this ratio of its base width.")
@click.option("--random", "rand", is_flag=True, help="With --family: a random arch on the grid.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --random.")
@space_options
@click.option("--format", "fmt", type=click.Choice(["onnx", "torch"]), default="onnx", show_default=True)
@click.option("--out", required=True, type=click.Path(), help="Output file.")
@click.option("--arch-out", type=click.Path(), help="Also write the arch JSON here.")
@click.option("--result", "result_file", type=click.Path(), help="Export an arch of this `search` result instead.")
@click.option("--rank", type=int, help="With --result: 1 = best, K = K-th best (default: the winner "
              "measured by `search --verify` where the result has one, else 1).")
@click.option("--weights", type=click.Choice(["fresh", "pruningnet"]), default="fresh", show_default=True,
              help="With --result: fresh initialization, or the PruningNet's weights (BN recalibrated).")
@click.option("--checkpoint", type=click.Path(), help="With --weights pruningnet: the PruningNet checkpoint "
              "(default: the one the search used).")
def export(arch_file, family, uniform, rand, seed, resolution, num_classes, in_channels, small_input, multiple,
           fmt, out, arch_out, result_file, rank, weights, checkpoint):
    """Export a pruned network as ONNX or a PyTorch state dict: an arch file, a --family member
    (fresh weights), or the K-th arch of a search --result (fresh or PruningNet weights)."""
    from .pruning.arch import load_arch, save_arch
    from .pruning.export import save_onnx, save_torch
    from .pruning.net import build_net

    if result_file is not None:
        if arch_file is not None or family is not None:
            raise UserError("give one of ARCH_FILE, --family or --result")
        from .pruning.search import export_result

        sp, arch, entry = export_result(result_file, out, rank, fmt, weights, checkpoint, arch_out, seed=seed)
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
        sp = make_space(family, resolution, num_classes, in_channels, small_input, multiple)
        arch = sp.uniform(uniform) if uniform is not None else sp.random(random.Random(seed))
    net = build_net(sp, arch).eval()
    (save_onnx if fmt == "onnx" else save_torch)(out, sp, net)
    if arch_out:
        save_arch(arch_out, sp, arch)
    click.echo(f"wrote {out} ({fmt}): {sp.family}, {sp.macs(arch) / 1e6:.2f} M MACs, {sp.params(arch) / 1e6:.3f} M params")


@main.command()
@click.option("--lut", "lut_path", required=True, type=click.Path(), help="LUT file (.json.gz).")
@click.argument("arch_files", nargs=-1, required=True, type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def predict(lut_path, arch_files, as_json):
    """Predicted latency (with an interval), MACs and params of each ARCH JSON on the LUT's device."""
    from .latency.lutfile import LUT
    from .latency.predictor import Predictor
    from .pruning.arch import load_arch

    lut = LUT.load(lut_path)
    pred = Predictor(lut)
    rows = []
    for f in arch_files:
        sp, arch = load_arch(f)
        if sp.hash != lut.space_hash:
            raise UserError(f"{f}: the arch is from another space ({sp.family} at {sp.resolution}, hash {sp.hash}) "
                            f"than {lut_path} ({lut.space.get('family')} at {lut.space.get('resolution')}, hash "
                            f"{lut.space_hash}); use a table built for the arch's space")
        rows.append({"arch": f, **pred.predict(sp.layer_specs(arch)).to_dict(), "macs": sp.macs(arch),
                     "params": sp.params(arch)})
    if as_json:
        echo_json({"lut": lut_path, "device": (lut.device or {}).get("name"), "predictions": rows})
        return
    for r in rows:
        cal = "calibrated" if r["calibrated"] else "table sum, no calibration (run `prune-lut validate --fit`)"
        click.echo(f"{r['arch']}: {r['ms']:.3f} ms [{r['low']:.3f}, {r['high']:.3f}] ({cal}; table sum "
                   f"{r['table_sum_ms']:.3f} ms), {r['macs'] / 1e6:.2f} M MACs, {r['params'] / 1e6:.3f} M params")


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
    from .latency.report import format_figures, plot
    from .latency.validate import exceeds, headline_predictions
    from .pruning.validation import load_record, validate_lut

    if (lut_path is None) == (from_record is None):
        raise UserError("give --lut FILE (to measure) or --from-record FILE (to recompute a report)")
    if from_record:
        rec = load_record(from_record)
    else:
        rec = validate_lut(lut_path, samples, seed, fit, host, fit_share, repeat_share, record_path, drift,
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
        dev = (rec.get("device") or {}).get("name")
        click.echo(f"{rep['n']} archs of {rec['lut_space'].get('family')} at {rec['lut_space'].get('resolution')} "
                   f"on {dev}, {rec.get('seconds', 0):.0f} s; record: {rec.get('record_path', from_record)}")
        click.echo(format_figures("table sum", rep["table_sum"]))
        if "lut_prediction" in rep:
            src = "the build's sum->e2e fit" if rec.get("lut_calibration_source") == "build" else "its calibration"
            click.echo(format_figures(f"table + {src}", rep["lut_prediction"]))
        if "fit" in rep:
            f = rep["fit"]
            click.echo(f"calibration candidates, mean |err| on the {f['n_heldout']} held-out archs (fitted on "
                       f"{f['n_fit']}): " + ", ".join(f"{k} {v['mean_abs_pct']:.1f}%"
                                                      for k, v in f["heldout_candidates"].items()))
            click.echo(f"selected by 5-fold CV on the fit part: {f['model']}"
                       + (f"; stored in {rec.get('lut')}" if not from_record else ""))
        click.echo(format_figures(rep["headline_name"], rep["headline"]))
        mc = rep["headline_macs"]
        click.echo(f"MACs as a proxy (same archs): Spearman {mc['spearman']:.3f}, Kendall {mc['kendall']:.3f}"
                   if mc["spearman"] is not None else "MACs as a proxy: n/a")
        nz = rep["noise"]
        if nz.get("pairs"):
            click.echo(f"noise floor ({nz['pairs']} archs measured twice): {100 * nz['within_5']:.0f}% of pairs "
                       f"within +-5%, {100 * nz['within_10']:.0f}% within +-10% (median {nz['median_abs_pct']:.1f}%)")
        r = rep["reference"]
        if r["lut_ms"]:
            scaled = {"global": "measurements scaled by the ratio", "local": "measurements scaled by the "
                      "neighbouring calls' reference", "none": "measurements not scaled (--drift none)"}
            click.echo(f"reference net: {r['lut_ms']:.3f} ms in the table, {r['median_now_ms']:.3f} ms now "
                       f"({r['min_now_ms']:.3f}-{r['max_now_ms']:.3f}); {scaled[rec.get('drift', 'global')]}; "
                       f"{r.get('remeasured', 0)} disturbed calls measured again")
        click.echo("worst: " + "; ".join(f"{w['id']} {w['predicted_ms']:.3f} vs {w['measured_ms']:.3f} ms "
                                         f"({w['error_pct']:+.1f}%)" for w in rep["worst"][:3]))
        if plot_path:
            click.echo(f"wrote {plot_path}")
    if max_error is not None and exceeds(rec, max_error):
        click.echo(f"error: mean absolute error {rep['headline'].get('mean_abs_pct', float('nan')):.1f}% "
                   f"exceeds --max-error {max_error}%", err=True)
        sys.exit(1)



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
    from .pruning.evolution import EvolutionConfig
    from .pruning.search import search_checkpoint

    cfg = EvolutionConfig(population=population, generations=generations, parents=parents,
                          mutation_prob=mutation_prob, seed=seed)
    cfg.check()
    say = (lambda m: click.echo(m, err=True)) if as_json else click.echo
    res = search_checkpoint(checkpoint, luts, latency_ms, cfg, out, macs_m=macs_m, resume=resume, plot=plot,
                            recal_batches=recal_batches, recal_batch_size=recal_batch_size, threads=threads,
                            progress=say, verify=verify, host=host)
    if not res:
        return
    if as_json:
        echo_json(res)
        return
    best, base = res["top"][0], res["uniform_baseline"]
    lat = ", ".join(f"{v:.4g} ms on {d}" for d, v in best["latency_ms"].items())
    click.echo(f"best: {best['accuracy']:.2%} at {lat}, {best['macs'] / 1e6:.2f} M MACs")
    if base:
        blat = ", ".join(f"{v:.4g} ms on {d}" for d, v in base["latency_ms"].items())
        click.echo(f"uniform x{base['ratio']:g}: {base['accuracy']:.2%} at {blat} "
                   f"({100 * (best['accuracy'] - base['accuracy']):+.2f} points for the search)")
    ver = res.get("verified")
    if ver:
        for w in ver["warnings"]:
            click.echo(f"warning: {w}", err=True)
        for v in ver["archs"] + ([{**ver["uniform"], "rank": f"uniform x{ver['uniform']['ratio']:g}"}]
                                 if ver["uniform"] else []):
            meas = ", ".join(f"{ms:.4g} ms on {d} (prediction {v['error_pct'][d]:+.1f}%)"
                             for d, ms in v["measured_ms"].items())
            click.echo(f"  measured #{v['rank']}: {meas}: {'meets' if v['meets'] else 'over'} the budget")
        for d, r in ver.get("reference", {}).items():
            if r["anchor_ms"]:
                click.echo(f"  the table's reference net on {d}: {r['measured_ms']:.4g} ms, anchored at "
                           f"{r['anchor_ms']:.4g} ms ({r['drift_pct']:+.1f}%: the device's drift since)")
        if ver["winner_rank"] is None:
            click.echo(f"warning: none of the best {ver['k']} archs measured under every budget; "
                       "raise --verify or lower the budget", err=True)
        else:
            click.echo(f"winner (measured): #{ver['winner_rank']}; `prune-lut export --result {out}` exports it")
    click.echo(f"{res['evaluations']} archs evaluated in {res['elapsed_s']:.0f} s; wrote {out}"
               + (f" and {plot}" if plot else ""))

@main.command()
@click.option("--device-file", type=click.Path(dir_okay=False), help="Also show this TOML profile.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def devices(device_file, as_json):
    """List device profiles (built-in, user directory, --device-file) and whether this host can measure them."""
    from .devices import list_devices, load_device_file, user_dirs
    from .latency.measure import usable

    devs = list_devices()
    if device_file:
        d = load_device_file(device_file)
        devs[d.name] = d
    rows = []
    for d in devs.values():
        ok, why = usable(d)
        rows.append({**d.to_dict(), "source": d.source, "usable": ok, "why": why})
    if as_json:
        echo_json({"devices": rows, "user_dirs": [str(p) for p in user_dirs()]})
        return
    for r in rows:
        opts = ", ".join(f"{k} {r[k]}" for k in ("provider", "device", "threads", "precision") if r.get(k))
        click.echo(f"{r['name']:<11} {r['backend']:<11} multiple {r['multiple']:<3} {opts}")
        click.echo(f"{'':<11} {'usable here' if r['usable'] else 'NOT usable here'}: {r['why']}"
                   + ("" if r["source"] == "builtin" else f"  [{r['source']}]"))
    click.echo(f"user profiles: *.toml in {', '.join(str(p) for p in user_dirs())} ($PRUNE_LUT_DEVICES)")


@main.command()
@click.option("--device", help="Device profile name (see `prune-lut devices`).")
@click.option("--device-file", type=click.Path(dir_okay=False), help="A TOML device profile instead of --device.")
@click.option("--family", required=True, help="Model family (mobilenet_v1, mobilenet_v2, resnet18, ...).")
@click.option("--resolution", type=int, default=None, help="Input size (default 224, or 8 with --small-input).")
@click.option("--num-classes", type=int, default=1000, show_default=True)
@click.option("--in-channels", type=int, default=3, show_default=True, help="Image channels (1 for gray).")
@click.option("--small-input", is_flag=True, help="Stem for 8x8..32x32 images: total stride 8, not 32.")
@click.option("--multiple", type=int, default=None, help="Width multiple of the space (default: the device's).")
@click.option("--out", type=click.Path(dir_okay=False), help="LUT file (default <device>-<family>-<resolution>.json.gz).")
@click.option("--time-budget", type=float, help="Minutes of measuring; the rest is filled by a regressor.")
@click.option("--shard", help="i/n: measure the i-th of n key shards (merge them with `prune-lut lut merge`).")
@click.option("--resume", is_flag=True, help="Continue an interrupted build in --out (measures nothing twice).")
@click.option("--heldout", type=int, default=8, show_default=True, help="Random nets profiled to score sum->e2e.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print `lut info` JSON of the result.")
@remote_options
def build(device, device_file, family, resolution, num_classes, in_channels, small_input, multiple, out,
          time_budget, shard, resume, heldout, seed, as_json, host):
    """Profile every layer configuration FAMILY's space can produce on a device into a LUT file."""
    from .devices import get_device
    from .latency.lutops import info
    from .latency.measure import get_meter
    from .pruning.coverage import build_space_table

    dev = get_device(device, device_file)
    sp = make_space(family, resolution, num_classes, in_channels, small_input, multiple or dev.multiple)
    if out is None:
        out = f"{dev.name}-{family}{'-small' if small_input else ''}-{sp.resolution}.json.gz"
    if time_budget is not None and time_budget <= 0:
        raise UserError(f"--time-budget must be > 0 minutes, got {time_budget}")
    meter = get_meter(dev, list(host) if host else None)
    lut = build_space_table(sp, dev, out, meter=meter, time_budget_min=time_budget, shard=shard, resume=resume,
                            seed=seed, heldout=heldout, progress=not as_json)
    i = info(lut)
    if as_json:
        echo_json(i)
        return
    _print_lut_info(out, i)


def _print_lut_info(path, i: dict) -> None:
    c, b, s2e, reg = i["coverage"], i["build"] or {}, i["sum_to_e2e"], i["regressor"]
    sp = i["space"]
    click.echo(f"{path}: device {i['device']} ({i['backend']}), {sp['family']} at {sp['resolution']}"
               f"{' small-input' if sp['small_input'] else ''}, multiple {sp['multiple']}, space {sp['hash']}")
    pv = i["provenance"]
    click.echo(f"  measured on {pv.get('host')} ({pv.get('cpu')}, {pv.get('cores')} cores"
               f"{', ' + pv['gpu'] if pv.get('gpu') else ''}), {pv.get('date')}, threads {pv.get('threads')}, "
               f"{pv.get('precision')}, onnxruntime {pv.get('onnxruntime')}, torch {pv.get('torch')}")
    click.echo(f"  entries {c['entries']} of {c['space_keys']} keys: {c['measured']} measured, {c['predicted']} predicted"
               f"{'' if c['complete'] else ' (INCOMPLETE)'}{', shard ' + c['shard'] if c['shard'] else ''}; "
               f"median spread {100 * (i['median_rel_spread'] or 0):.1f}%")
    if b:
        click.echo(f"  build: {b.get('elapsed_s', 0) / 60:.1f} min, {b.get('networks_done')} networks profiled")
    if reg:
        click.echo(f"  regressor (held-out measured entries): median abs error "
                   f"{100 * (reg.get('heldout_median_abs_rel_err') or 0):.1f}%, p90 "
                   f"{100 * (reg.get('heldout_p90_abs_rel_err') or 0):.1f}% ({reg.get('n_predicted')} entries predicted)")
    if s2e:
        h = s2e.get("heldout") or {}
        click.echo(f"  sum->e2e: e2e = {s2e['a']:.3f} * sum + {s2e['b']:.3f} ms over {s2e['n']} nets "
                   f"(median error {100 * s2e['median_abs_rel_err']:.1f}%)"
                   + (f"; {h['n']} held-out nets: median {100 * h['median_abs_rel_err']:.1f}%, "
                      f"{100 * h['within_10pct']:.0f}% within 10%" if h else ""))
    r = i["reference"]
    if r:
        click.echo(f"  reference (full net): {r['median_ms']:.3f} ms (first {r['first_ms']:.3f}, last {r['last_ms']:.3f})")
    if i["calibration"]:
        click.echo("  calibration: fitted by validate")


@main.group()
def lut():
    """Inspect and combine LUT files."""


@lut.command("info")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lut_info(path, as_json):
    """Provenance, coverage and error figures of a LUT file."""
    from .latency.lutfile import LUT
    from .latency.lutops import info

    i = info(LUT.load(path))
    if as_json:
        echo_json(i)
    else:
        _print_lut_info(path, i)


@lut.command("merge")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The merged LUT file.")
def lut_merge(paths, out):
    """Join shards built on identical boards (same device, space and runtimes) into one table."""
    from .latency.lutfile import LUT
    from .latency.lutops import merge

    m = merge([LUT.load(p) for p in paths], list(paths))
    m.save(out)
    c = len(m.entries)
    click.echo(f"wrote {out}: {c} entries ({len(m.measured_keys())} measured) of {m.space.get('keys')} keys "
               f"from {len(paths)} files")


@main.command()
@click.option("--family", required=True, help="Model family (see `prune-lut space`).")
@click.option("--data", "data_spec", default="digits", show_default=True,
              help="digits | fashion-mnist[:DIR] | cifar10:DIR | imagefolder:DIR (local files only).")
@click.option("--resolution", type=int, help="Resize images to this size (default: the data's own).")
@click.option("--small-input/--standard-input", default=None,
              help="Stem for small images (default: small-input below 64 pixels).")
@click.option("--multiple", type=int, default=1, show_default=True, help="Round every width to a multiple of this.")
@click.option("--val-per-class", type=int, help="Sub-validation images held out per class (default per data set).")
@click.option("--train-per-class", type=int, help="Train on a class-balanced subset of this many images per class.")
@click.option("--epochs", type=int, help="Epochs (default 10).")
@click.option("--batch-size", type=int, help="Global batch size, shared by all processes (default 128).")
@click.option("--lr", type=float, help="Peak learning rate of the cosine schedule (default 0.05).")
@click.option("--weight-decay", type=float, help="On the PruningBlocks' weights (default 5e-4).")
@click.option("--hidden", type=int, help="Hidden units of each PruningBlock's MLP (default 32, as the paper).")
@click.option("--seed", type=int, help="Seeds the split, the data order and the coding vectors (default 0).")
@click.option("--out", default="pruningnet.pt", show_default=True, type=click.Path(), help="Checkpoint file.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint at --out exactly where it stopped.")
@click.option("--lut", "lut_path", type=click.Path(), help="LUT for --latency-range.")
@click.option("--latency-range", help="LO:HI ms: train only on archs the LUT predicts in this range.")
@click.option("--macs-range", help="LO:HI millions of MACs: train only on archs in this range.")
@click.option("--rule", type=click.Choice(["sandwich", "alternate", "random"]), default=None,
              help="Archs per step: sandwich = widest, smallest and --random-archs random ones (default); "
                   "alternate = widest on even steps, random on odd; random = one random arch (the paper's).")
@click.option("--random-archs", type=click.IntRange(0, 16), default=None,
              help="With --rule sandwich: random archs per step beside the widest and smallest (default 2).")
@click.option("--distill/--no-distill", default=None,
              help="With --rule sandwich: pruned archs learn from the widest's soft predictions (default: on).")
@click.option("--val-archs", type=click.Choice(["full", "full+smallest", "none"]), default="full", show_default=True,
              help="Generated networks scored on sub-val after each epoch (after BatchNorm recalibration).")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def train(family, data_spec, resolution, small_input, multiple, val_per_class, train_per_class, epochs, batch_size, lr,
          weight_decay,
          hidden, seed, out, resume, lut_path, latency_range, macs_range, rule, random_archs, distill, val_archs, device,
          no_progress, as_json):
    """Meta-train a PruningNet for FAMILY on --data (by default the widest, the smallest and two random
    coding vectors per step, the pruned ones distilled from the widest); resumable.

    Multi-process: `torchrun --nproc-per-node N -m prune_lut.cli train ...`."""
    from .pruning import train as tr

    if latency_range and macs_range:
        raise UserError("give --latency-range or --macs-range, not both")
    lat = tr.parse_range(latency_range, "--latency-range")
    macs = tr.parse_range(macs_range, "--macs-range", 1e6)
    data = tr.data_for(out, resume, data_spec, resolution, val_per_class, seed, train_per_class)
    sp = tr.space_for_data(family, data, small_input, multiple)
    res = tr.train_pruningnet(sp, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, out=out, resume=resume,
                              hidden=hidden, weight_decay=weight_decay, macs_range=macs, latency_range=lat,
                              lut=lut_path, progress=not no_progress, device=device, validate_archs=val_archs,
                              rule=rule, random_archs=random_archs, distill=distill)
    _report_training(res, as_json)


def _report_training(res, as_json: bool) -> None:
    import os

    if os.environ.get("RANK", "0") != "0":
        return
    last = res.history[-1] if res.history else {}
    if as_json:
        echo_json({"checkpoint": str(res.path), "epochs": res.header["epoch"], "space_hash": res.header["space_hash"],
                   "data": res.header["data"], "last_epoch": last, "test_acc": res.test_acc})
        return
    shown = {k: v for k, v in last.items() if k not in ("rank_digests", "archs_digest")}
    click.echo(f"wrote {res.path} after {res.header['epoch']} epochs: " +
               "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items()))
    if res.test_acc is not None:
        click.echo(f"test accuracy {res.test_acc:.4f} ({res.header['data']['test']} images)")


@main.command()
@click.argument("arch_file", type=click.Path())
@click.option("--data", "data_spec", default="digits", show_default=True, help="As for `train`.")
@click.option("--epochs", type=int, help="Epochs (default 10).")
@click.option("--batch-size", type=int, help="Global batch size (default 128).")
@click.option("--lr", type=float, help="Peak learning rate (default 0.05).")
@click.option("--weight-decay", type=float, help="On conv and linear weights (default 5e-4).")
@click.option("--seed", type=int, help="Seeds the initialization and the data order (default 0).")
@click.option("--out", default="retrain.pt", show_default=True, type=click.Path(), help="Checkpoint file.")
@click.option("--resume", is_flag=True, help="Continue the checkpoint at --out.")
@click.option("--init", "init", help="pruningnet:CKPT starts from the PruningNet's generated weights.")
@click.option("--holdout", is_flag=True, help="Keep the sub-validation split out of training and score it.")
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary.")
def retrain(arch_file, data_spec, epochs, batch_size, lr, weight_decay, seed, out, resume, init, holdout, device,
            no_progress, as_json):
    """Train the pruned network of ARCH_FILE (arch JSON) from scratch and report its test accuracy."""
    from .pruning import train as tr
    from .pruning.arch import load_arch

    sp, arch = load_arch(arch_file)
    if init is not None and not init.startswith("pruningnet:"):
        raise UserError(f"--init {init!r}: expected pruningnet:CKPT")
    data = tr.data_for(out, resume, data_spec, sp.resolution, None, seed)
    res = tr.train_plain(sp, arch, data, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, out=out,
                         resume=resume, weight_decay=weight_decay, init=init[len("pruningnet:"):] if init else None,
                         progress=not no_progress, device=device, holdout=holdout)
    _report_training(res, as_json)



@main.command()
@click.option("--out", default="quickstart", show_default=True, type=click.Path(), help="Output folder.")
@click.option("--data", "data_spec", type=click.Choice(["digits", "fashion-mnist"]), default="digits", show_default=True)
@click.option("--budget-share", type=float, default=0.5, show_default=True,
              help="Latency budget as a share of the full network's predicted latency.")
@click.option("--epochs", type=int, help="PruningNet epochs (default: train's default).")
@click.option("--train-per-class", type=int, help="Class-balanced training subset (default: all digits; "
              "600 per class of Fashion-MNIST).")
@click.option("--population", type=int, default=50, show_default=True)
@click.option("--generations", type=int, default=20, show_default=True)
@click.option("--validate-samples", type=int, default=12, show_default=True,
              help="Archs measured to check the table here (>= 12 also fits a calibration).")
@click.option("--verify", type=int, default=5, show_default=True,
              help="Best archs of the search measured here; the winner is the most accurate that meets the budget.")
@click.option("--build-lut", is_flag=True, help="Build the table on this CPU even when one ships.")
@click.option("--lut-minutes", type=float, help="With --build-lut: time budget for the build.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON.")
def quickstart(out, data_spec, budget_share, epochs, train_per_class, population, generations, validate_samples,
               verify, build_lut, lut_minutes, seed, as_json):
    """The whole loop on this CPU in minutes: table, validation, PruningNet, search, export, measurement."""
    from .pruning.quickstart import QuickstartOptions, run_quickstart

    opt = QuickstartOptions(out=out, data=data_spec, budget_share=budget_share, epochs=epochs,
                            train_per_class=train_per_class, population=population, generations=generations,
                            validate_samples=validate_samples, verify=verify, build_lut=build_lut,
                            lut_minutes=lut_minutes, seed=seed)
    summary = run_quickstart(opt, say=(lambda m: click.echo(m, err=True)) if as_json else click.echo)
    if as_json:
        echo_json(summary)

if __name__ == "__main__":
    main()
