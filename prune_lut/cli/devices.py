"""``prune-lut devices``: the device profiles and whether this host can measure them."""
from __future__ import annotations

import click

from .app import main
from .options import echo_json, json_option


@main.command()
@click.option("--device-file", type=click.Path(dir_okay=False), help="Also show this TOML profile.")
@json_option
def devices(device_file, as_json):
    """List device profiles (built-in, user directory, --device-file) and whether this host can measure them."""
    from ..devices import list_devices, load_device_file, user_dirs
    from ..latency.measure import usable

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
