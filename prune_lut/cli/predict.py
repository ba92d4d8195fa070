"""``prune-lut predict``: an arch's latency from a device's table."""
from __future__ import annotations

import click

from ..errors import UserError
from .app import main
from .options import echo_json, json_option


@main.command()
@click.option("--lut", "lut_path", required=True, type=click.Path(), help="LUT file (.json.gz).")
@click.argument("arch_files", nargs=-1, required=True, type=click.Path())
@json_option
def predict(lut_path, arch_files, as_json):
    """Predicted latency (with an interval), MACs and params of each ARCH JSON on the LUT's device."""
    from ..latency.lutfile import LUT
    from ..latency.predictor import Predictor
    from ..pruning.arch import load_arch

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
