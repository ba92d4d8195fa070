"""``prune-lut predict``: a network's latency from a device's table, for an arch JSON or any ONNX CNN."""
from __future__ import annotations

import click

from ..errors import UserError
from .app import main
from .options import echo_json, json_option


def _arch_row(pred, lut, lut_path, f: str, per_layer: bool) -> dict:
    from ..latency.lutfile import space_difference
    from ..latency.model_predict import predict_layers
    from ..pruning.arch import load_arch

    sp, arch = load_arch(f)
    if sp.hash != lut.space_hash:
        diff = space_difference(lut.space, sp.describe(), here=str(lut_path), there="the arch")
        raise UserError(f"{f}: the arch is from another space than {lut_path} ({diff}); use a table built for the "
                        "arch's space")
    specs = sp.layer_specs(arch)
    row = {"arch": f, **pred.predict(specs).to_dict(), "calibration": pred.calibration_source, "macs": sp.macs(arch),
           "params": sp.params(arch)}
    if per_layer:
        row["layers"] = [x.to_dict() for x in predict_layers(pred, specs, source=f).layers]
    return row


def _onnx_row(pred, f: str, per_layer: bool) -> dict:
    from ..latency.model_predict import predict_onnx

    d = predict_onnx(pred, f).to_dict()
    if not per_layer:
        d.pop("layers")
    return {"onnx": f, **d}


def _lines(r: dict) -> list[str]:
    cal = {"calibrate": "calibrated", "build": "the build's sum->e2e fit, not calibrated"}.get(
        r["calibration"], "table sum, no calibration (run `prune-lut calibrate`)")
    name = r.get("arch") or r["onnx"]
    head = f"{name}: {r['ms']:.3f} ms [{r['low']:.3f}, {r['high']:.3f}] ({cal}; table sum {r['table_sum_ms']:.3f} ms)"
    if "arch" in r:
        out = [f"{head}, {r['macs'] / 1e6:.2f} M MACs, {r['params'] / 1e6:.3f} M params"]
    else:
        c = r["counts"]
        out = [f"{head}; {100 * r['measured_share']:.1f}% of the table time from measured entries ({c['measured']} "
               f"measured, {c['predicted']} predicted by the build, {c['regressor']} by the regressor now); "
               f"{r['convs_mapped']} of {r['conv_nodes']} Conv nodes mapped; "
               f"{r['n_unsupported']} operators the table cannot express"]
        out += [f"  not in the table: {u['node']} ({u['op_type']}): {u['reason']}" for u in r["unsupported"]]
    for x in r.get("layers", []):
        out.append(f"  {x['ms']:8.4f} ms  {x['source']:<9}  {x['key']}")
    return out


@main.command()
@click.option("--lut", "lut_path", required=True, type=click.Path(), help="LUT file (.json.gz).")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--per-layer", is_flag=True, help="Each layer's key, where its time came from, and its share (ms).")
@json_option
def predict(lut_path, files, per_layer, as_json):
    """Predicted latency (with an interval) of each FILE on the LUT's device: an arch JSON of the
    table's space (with MACs and params), or any ONNX CNN (batch 1; its operators mapped to the table's
    keys, keys the table lacks filled by its regressor, operators it cannot express listed)."""
    from ..latency.frame import frame_of, where
    from ..latency.lutfile import LUT
    from ..latency.predictor import Predictor

    lut = LUT.load(lut_path)
    pred = Predictor(lut)
    rows = [_onnx_row(pred, f, per_layer) if str(f).lower().endswith(".onnx") else _arch_row(pred, lut, lut_path, f,
                                                                                            per_layer) for f in files]
    frame = frame_of(lut)
    if as_json:
        echo_json({"lut": lut_path, "device": (lut.device or {}).get("name"), "frame": frame, "predictions": rows})
        return
    click.echo(f"in the milliseconds of {where(frame)}")
    for r in rows:
        click.echo("\n".join(_lines(r)))
