"""Text the commands print: tables, validation reports, search results, training summaries."""
from __future__ import annotations

from ..latency.frame import where
from ..latency.report import format_figures


def lut_info_lines(path, i: dict) -> list[str]:
    """``lut info`` (and ``build``'s summary) of a table, from ``latency.lutops.info``."""
    c, b, s2e, reg = i["coverage"], i["build"] or {}, i["sum_to_e2e"], i["regressor"]
    sp, pv = i["space"], i["provenance"]
    out = [f"{path}: device {i['device']} ({i['backend']}), {sp['family']} at {sp['resolution']}"
           f"{' small-input' if sp['small_input'] else ''}, multiple {sp['multiple']}, space {sp['hash']}",
           f"  measured on {pv.get('host')} ({pv.get('cpu')}, {pv.get('cores')} cores"
           f"{', ' + pv['gpu'] if pv.get('gpu') else ''}), {pv.get('date')}, threads {pv.get('threads')}, "
           f"{pv.get('precision')}, onnxruntime {pv.get('onnxruntime')}, torch {pv.get('torch')}",
           f"  entries {c['entries']} of {c['space_keys']} keys: {c['measured']} measured, {c['predicted']} predicted"
           + (f", {c['not_in_space']} not keys of this space (e.g. {c['foreign_keys'][0]})" if c.get("not_in_space")
              else "")
           + f"{'' if c['complete'] else ' (INCOMPLETE)'}{', shard ' + c['shard'] if c['shard'] else ''}; "
           f"median spread {100 * (i['median_rel_spread'] or 0):.1f}%"]
    if b:
        out.append(f"  build: {b.get('elapsed_s', 0) / 60:.1f} min, {b.get('networks_done')} networks profiled")
    if reg:
        out.append(f"  regressor (held-out measured entries): median abs error "
                   f"{100 * (reg.get('heldout_median_abs_rel_err') or 0):.1f}%, p90 "
                   f"{100 * (reg.get('heldout_p90_abs_rel_err') or 0):.1f}% ({reg.get('n_predicted')} entries predicted)")
    if s2e:
        h = s2e.get("heldout") or {}
        out.append(f"  sum->e2e: e2e = {s2e['a']:.3f} * sum + {s2e['b']:.3f} ms over {s2e['n']} nets "
                   f"(median error {100 * s2e['median_abs_rel_err']:.1f}%)"
                   + (f"; {h['n']} held-out nets: median {100 * h['median_abs_rel_err']:.1f}%, "
                      f"{100 * h['within_10pct']:.0f}% within 10%" if h else ""))
    r = i["reference"]
    if r:
        out.append(f"  reference (full net): {r['median_ms']:.3f} ms (first {r['first_ms']:.3f}, last {r['last_ms']:.3f})")
    f = i["frame"]
    out.append(f"  predicts in the milliseconds of {where(f)}"
               + (f"; reference net then {f['reference_ms']:.3f} ms" if f.get("reference_ms") else ""))
    if i["calibration"]:
        h = f.get("heldout") or {}
        out.append(f"  calibration: {i['calibration']['model']}"
                   + (f", held-out median error {h['median_abs_pct']:.1f}%, {100 * (h.get('within_10') or 0):.0f}% "
                      "within +-10%"
                      if h.get("median_abs_pct") is not None else ""))
    return out


def validation_lines(rec: dict, from_record: str | None) -> list[str]:
    """The report of ``prune-lut validate`` or ``calibrate`` (or of a record either wrote)."""
    rep = rec["report"]
    dev = (rec.get("device") or {}).get("name")
    out = [f"{rep['n']} archs of {rec['lut_space'].get('family')} at {rec['lut_space'].get('resolution')} "
           f"on {dev}, {rec.get('seconds', 0):.0f} s; record: {rec.get('record_path', from_record)}",
           format_figures("table sum", rep["table_sum"])]
    if "lut_prediction" in rep:
        src = "the build's sum->e2e fit" if rec.get("lut_calibration_source") == "build" else "its calibration"
        out.append(format_figures(f"table + {src}", rep["lut_prediction"]))
    if "fit" in rep:
        f = rep["fit"]
        out.append(f"calibration candidates, mean |err| out of fold ({f['folds']}-fold CV over {f['n']} archs): "
                   + ", ".join(f"{k} {v['mean_abs_pct']:.1f}%" for k, v in f["candidates"].items()))
        out.append(f"selected: {f['model']}, fitted on all {f['n']} archs"
                   + (f"; stored in {rec.get('calibrated_lut')}" if not from_record else ""))
    out.append(format_figures(rep["headline_name"], rep["headline"]))
    mc = rep["headline_macs"]
    out.append(f"MACs as a proxy (same archs): Spearman {mc['spearman']:.3f}, Kendall {mc['kendall']:.3f}"
               if mc["spearman"] is not None else "MACs as a proxy: n/a")
    nz = rep["noise"]
    if nz.get("pairs"):
        out.append(f"noise floor ({nz['pairs']} archs measured twice): {100 * nz['within_5']:.0f}% of pairs "
                   f"within +-5%, {100 * nz['within_10']:.0f}% within +-10% (median {nz['median_abs_pct']:.1f}%)")
    r = rep["reference"]
    scaled = {"none": "measurements not scaled", "local": "measurements scaled by the run's median reference over "
              "the neighbouring calls'"}[rec.get("drift", "none")]
    frame_ms = f"{r['frame_ms']:.3f} ms in the table's frame, " if r.get("frame_ms") else ""
    out.append(f"reference net: {frame_ms}{r['median_now_ms']:.3f} ms now ({r['min_now_ms']:.3f}-"
               f"{r['max_now_ms']:.3f}); {scaled}; {r.get('remeasured', 0)} disturbed calls measured again")
    if rec.get("previous_frame"):
        out.append(f"frame: was {where(rec['previous_frame'])}; now {where(rec['frame'])}")
    elif rec.get("frame"):
        out.append(f"the table predicts in the milliseconds of {where(rec['frame'])}")
    out.append("worst: " + "; ".join(f"{w['id']} {w['predicted_ms']:.3f} vs {w['measured_ms']:.3f} ms "
                                     f"({w['error_pct']:+.1f}%)" for w in rep["worst"][:3]))
    return out


def search_lines(res: dict, out_path: str, plot: str | None) -> tuple[list[str], list[str]]:
    """(lines for stdout, warnings for stderr) of a finished search."""
    best, base = res["top"][0], res["uniform_baseline"]
    lat = ", ".join(f"{v:.4g} ms on {d}" for d, v in best["latency_ms"].items())
    lines = [f"best: {best['accuracy']:.2%} at {lat}, {best['macs'] / 1e6:.2f} M MACs"]
    warnings: list[str] = []
    if base:
        blat = ", ".join(f"{v:.4g} ms on {d}" for d, v in base["latency_ms"].items())
        lines.append(f"uniform x{base['ratio']:g}: {base['accuracy']:.2%} at {blat} "
                     f"({100 * (best['accuracy'] - base['accuracy']):+.2f} points for the search)")
        if res.get("uniform_test"):
            from ..pruning.search.paired import margin_line  # the search ran: its modules are loaded

            lines.append("  " + margin_line(res["uniform_test"]))
    ver = res.get("verified")
    if ver:
        warnings += ver["warnings"]
        for v in ver["archs"] + ([{**ver["uniform"], "rank": f"uniform x{ver['uniform']['ratio']:g}"}]
                                 if ver["uniform"] else []):
            meas = ", ".join(f"{ms:.4g} ms on {d} (prediction {v['error_pct'][d]:+.1f}%)"
                             for d, ms in v["measured_ms"].items())
            lines.append(f"  measured #{v['rank']}: {meas}: {'meets' if v['meets'] else 'over'} the budget")
        for d, r in ver.get("reference", {}).items():
            if r["frame_ms"]:
                lines.append(f"  the table's reference net on {d}: {r['measured_ms']:.4g} ms, {r['frame_ms']:.4g} ms "
                             f"in the table's frame ({r['drift_pct']:+.1f}%: the device's drift since)")
        if ver["winner_rank"] is None:
            warnings.append(f"none of the best {ver['k']} archs measured under every budget; "
                            "raise --verify or lower the budget")
        else:
            lines.append(f"winner (measured): #{ver['winner_rank']}; `prune-lut export --result {out_path}` exports it")
    lines.append(f"{res['evaluations']} archs evaluated in {res['elapsed_s']:.0f} s; wrote {out_path}"
                 + (f" and {plot}" if plot else ""))
    return lines, warnings


def training_lines(res) -> list[str]:
    last = res.history[-1] if res.history else {}
    shown = {k: v for k, v in last.items() if k not in ("rank_digests", "archs_digest")}
    out = [f"wrote {res.path} after {res.header['epoch']} epochs: " +
           "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())]
    if res.test_acc is not None:
        out.append(f"test accuracy {res.test_acc:.4f} ({res.header['data']['test']} images)")
    return out
