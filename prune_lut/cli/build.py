"""``prune-lut build``: a channel space's lookup table on a device."""
from __future__ import annotations

import click

from ..errors import UserError
from ..outputs import Output, check_outputs
from .app import main
from .options import SEED, count, echo_json, force_option, make_space, positive, remote_options, space_options
from .render import lut_info_lines


@main.command()
@click.option("--device", help="Device profile name (see `prune-lut devices`).")
@click.option("--device-file", type=click.Path(dir_okay=False), help="A TOML device profile instead of --device.")
@click.option("--family", required=True, help="Model family (mobilenet_v1, mobilenet_v2, resnet18, ...).")
@space_options(multiple_help="Width multiple of the space (default: the device's).", multiple_default=None)
@click.option("--out", type=click.Path(), help="LUT file (default <device>-<family>-<resolution>.json.gz).")
@click.option("--time-budget", type=positive(), help="Minutes of measuring; the rest is filled by a regressor.")
@click.option("--shard", help="i/n: measure the i-th of n key shards (merge them with `prune-lut lut merge`).")
@click.option("--resume", is_flag=True, help="Continue an interrupted build in --out (measures nothing twice).")
@force_option("an existing --out (the build starts over)")
@click.option("--heldout", type=count(0, 1000), default=8, show_default=True,
              help="Random nets profiled to score sum->e2e.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print `lut info` JSON of the result.")
@remote_options
def build(device, device_file, family, resolution, num_classes, in_channels, small_input, multiple, rounding, out,
          time_budget, shard, resume, force, heldout, seed, as_json, host):
    """Profile every layer configuration FAMILY's space can produce on a device into a LUT file."""
    from ..devices import get_device
    from ..latency.build import parse_shard
    from ..latency.lutops import info
    from ..latency.measure import get_meter
    from ..tables.build import build_space_table

    dev = get_device(device, device_file)
    sp = make_space(family, resolution, num_classes, in_channels, small_input,
                    (multiple or (1 if rounding == "floor" else dev.multiple)), rounding)
    if out is None:
        out = f"{dev.name}-{family}{'-small' if small_input else ''}-{sp.resolution}.json.gz"
    if resume and force:
        raise UserError("give --resume (continue the build in --out) or --force (start it over), not both")
    parse_shard(shard)
    check_outputs([Output("--out", out, replace=resume or force,
                          hint="pass --resume to continue that build, or --force to start over")],
                  [("--device-file", device_file)])
    meter = get_meter(dev, list(host) if host else None)
    lut = build_space_table(sp, dev, out, meter=meter, time_budget_min=time_budget, shard=shard, resume=resume,
                            seed=seed, heldout=heldout, progress=not as_json, force=force)
    i = info(lut)
    if as_json:
        echo_json(i)
        return
    click.echo("\n".join(lut_info_lines(out, i)))
