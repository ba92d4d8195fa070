"""`prune-lut quickstart`: the whole loop on this machine's CPU, in minutes, into one folder.

1. lookup table: the shipped ``cpu`` table of the quickstart space (copied, so calibrating it
   changes nothing in the package), or a fresh build on this CPU (``build_lut``);
2. calibrate it on this CPU (``prune-lut calibrate``: archs measured end to end, the calibration
   that predicts them best out of fold stored in the copy), so that predictions, the budget and the
   measurements below are all in this machine's milliseconds, however fast it is;
3. train a PruningNet on digits (or Fashion-MNIST, resized to the space's 8x8);
4. search under a budget (a share of the full network's predicted latency) and measure the
   search's best ``verify`` archs, the uniform-width baseline and the full network end to end on
   this CPU (``search --verify``): the winner is the most accurate of those archs whose *measured*
   latency meets the budget (a search against a table favours the archs it under-predicts);
5. export the winner, the baseline and the full network to ONNX (PruningNet weights, BN
   recalibrated) and score them with those weights;
6. retrain the three for a few epochs, from scratch as the paper retrains its winner (or fine-tuned from
   the PruningNet's weights, ``--retrain-from pruningnet``), and report
   predicted vs measured latency and both accuracies (``summary.json``: ``test_accuracy`` with the
   PruningNet's weights, ``retrained_test_accuracy``).

Every stage reuses its output when it is already in the folder, so an interrupted quickstart
continues where it stopped (training resumes from its last epoch, the search from its last generation).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .devices import get_device
from .errors import ParamError, UserError
from .files import write_json
from .latency.frame import where
from .latency.lutfile import LUT
from .latency.predictor import Predictor
from .latency.report import plot
from .latency.validate import headline_predictions
from .latency.worker import cpu_model
from .lut_data import find_table
from .pruning.evolution import EvolutionConfig
from .pruning.export import save_onnx
from .pruning.scoring import GeneratedNets
from .pruning.search import load_result, plot_result, search_checkpoint, state_path
from .pruning.search.paired import margin_line
from .pruning.space import ChannelSpace, get_space
from .pruning.train import DEFAULTS, data_for, load_checkpoint, train_plain, train_pruningnet
from .tables.build import build_space_table
from .tables.validate import calibrate_table, load_record
from .tables.verify import Verifier

log = logging.getLogger(__name__)

# The quickstart space: small-input MobileNetV2 for 8x8 gray images, 10 classes, widths in 8s (the cpu device's multiple).
SPACE = dict(family="mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
DATA = ("digits", "fashion-mnist")
# Retraining starts: from scratch (the paper's protocol and the default: on digits it beat fine-tuning the
# PruningNet's weights at equal epochs, docs/BENCHMARKS.md "quickstart") or from the PruningNet's weights
RETRAIN_FROM = ("scratch", "pruningnet")
# PruningNet epochs on digits: each step trains four archs (docs/BENCHMARKS.md, quickstart)
DIGITS_EPOCHS = 6
# More processes than this leave each a handful of the 50 archs of a generation, and every one starts torch.
MAX_PROCESSES = 4


def quickstart_space() -> ChannelSpace:
    return get_space(**SPACE)


@dataclass
class QuickstartOptions:
    out: str = "quickstart"
    data: str = "digits"
    device: str = "cpu"
    budget_share: float = 0.5  # of the full network's predicted latency
    epochs: int | None = None  # None: DIGITS_EPOCHS on digits, train's default on Fashion-MNIST
    train_per_class: int | None = None  # None: all of digits; 600 per class of Fashion-MNIST
    population: int = 50
    generations: int = 20
    parents: int = 10
    calibrate_samples: int = 30  # end-to-end runs that adapt the table to this machine
    verify: int = 5  # best archs of the search measured here; the winner must meet the budget measured
    retrain_from: str = "scratch"  # the start of the winner's, the uniform arch's and the full net's retraining
    retrain_epochs: int = 10  # epochs of each (0: no retraining)
    build_lut: bool = False
    lut_minutes: float | None = None
    seed: int = 0
    processes: int | None = None  # that share the search; None: one per core, up to MAX_PROCESSES

    def check(self) -> None:
        if self.data not in DATA:
            raise UserError(f"--data {self.data!r}: the quickstart runs on {' or '.join(DATA)}")
        if not 0 < self.budget_share < 1:
            raise ParamError("budget_share", f"must lie in (0, 1), got {self.budget_share}")
        if self.verify < 1:
            raise ParamError("verify", f"must be >= 1 (archs measured to pick the winner), got {self.verify}")
        if self.retrain_from not in RETRAIN_FROM:
            raise UserError(f"--retrain-from {self.retrain_from!r}: expected {' or '.join(RETRAIN_FROM)}")
        if self.retrain_epochs < 0:
            raise ParamError("retrain_epochs", f"must be >= 0 (0: no retraining), got {self.retrain_epochs}")
        if self.processes is not None and self.processes < 1:
            raise ParamError("processes", f"must be >= 1, got {self.processes}")

    @property
    def workers(self) -> int:
        """The processes to use: as given, else one per core this process may run on, at most MAX_PROCESSES."""
        if self.processes is not None:
            return self.processes
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(1, min(cores, MAX_PROCESSES))


class Quickstart:
    """The stages of one quickstart folder; each reuses what an earlier call left there."""

    def __init__(self, opt: QuickstartOptions, say: Callable[[str], None]):
        opt.check()
        self.opt, self.say = opt, say
        self.out = Path(opt.out)
        self.space = quickstart_space()
        self.device = get_device(opt.device)
        self.lut_path = self.out / f"{self.device.name}.lut.json.gz"
        self.ckpt = self.out / "pruningnet.pt"
        self.result_path = self.out / "result.json"
        self.stages: dict[str, float] = {}

    def stage(self, name: str, key: str, run: Callable):
        self.say(f"== {name}")
        t0 = time.perf_counter()
        value = run()
        self.stages[key] = time.perf_counter() - t0
        return value

    # ---- 1. lookup table -----------------------------------------------------------------
    def table(self) -> dict:
        opt, say = self.opt, self.say
        shipped = find_table(self.space, self.device.name)
        if self.lut_path.exists() and not opt.build_lut:
            say(f"reusing {self.lut_path}")
        elif opt.build_lut or shipped is None:
            if not opt.build_lut:
                say(f"no shipped {self.device.name} table for this space: building one on this CPU")
            build_space_table(self.space, self.device, self.lut_path, time_budget_min=opt.lut_minutes,
                              resume=self.lut_path.exists(), seed=opt.seed)  # resumes an interrupted build
            say(f"built {self.lut_path}")
        else:
            shutil.copyfile(shipped, self.lut_path)
            lut = LUT.load(self.lut_path)
            say(f"copied the shipped table {shipped.name} (measured on {lut.provenance.get('cpu')}, "
                f"{str(lut.provenance.get('date'))[:10]}) to {self.lut_path}")
        return {"path": str(self.lut_path), "entries": len(LUT.load(self.lut_path).entries)}

    # ---- 2. calibrate it here -------------------------------------------------------------------
    def calibration(self) -> dict:
        opt, say = self.opt, self.say
        record_path = self.out / "calibration.json"
        if record_path.exists():
            rec = load_record(record_path)
            say(f"reusing {record_path}")
        else:
            rec = calibrate_table(self.lut_path, samples=opt.calibrate_samples, seed=opt.seed,
                                  record_path=record_path, progress=False)
        rep, head = rec["report"], rec["report"]["headline"]
        for w in rec.get("previous_warnings", []):
            say(f"before calibration: {w}")
        say(f"{rep['n']} archs measured: {rep['headline_name']}: mean |error| "
            f"{head.get('mean_abs_pct', float('nan')):.1f}%, {100 * (head.get('within_10') or 0):.0f}% within +-10%")
        say(f"the table now predicts in the milliseconds of {where(rec['frame'])}")
        try:
            p, m, macs = headline_predictions(rec)
            plot(self.out / "calibration.png", p, m, macs, None,
                 title=f"quickstart table on this CPU: {rep['headline_name']}")
        except (KeyError, ValueError) as e:  # a plot is a nicety; the figures are in the record
            log.warning("no calibration plot: %s", e)
        return {"record": str(record_path), "headline": rep["headline_name"], "figures": head, "frame": rec["frame"],
                "previous_frame": rec.get("previous_frame")}

    # ---- 3. train the PruningNet -----------------------------------------------------------------
    def training(self) -> dict:
        opt, say = self.opt, self.say
        digits = opt.data == "digits"
        per_class = opt.train_per_class if opt.train_per_class is not None else (None if digits else 600)
        epochs = opt.epochs or (DIGITS_EPOCHS if digits else DEFAULTS["epochs"])
        ck = load_checkpoint(self.ckpt) if self.ckpt.exists() else None
        data = data_for(opt.data, ck, resolution=self.space.resolution, seed=opt.seed, train_per_class=per_class)
        if ck is not None and ck.epoch >= epochs:
            say(f"reusing {self.ckpt}")
            self.pruningnet, hist = ck.pruningnet, ck.header.get("history")
        else:
            # digits has 1238 sub-train images: batch 32 gives 38 steps an epoch (128 gave 9), and at batch 32
            # lr 0.05 is unstable for the plain net too (benchmarks/train_digits_quickstart.py)
            res = train_pruningnet(self.space, data, epochs=epochs, seed=opt.seed, out=self.ckpt, resume=True,
                                   batch_size=32 if digits else None, lr=0.02 if digits else None, checkpoint=ck)
            self.pruningnet, hist = res.model.eval(), res.history
        self.data = data
        hist = hist or [{}]
        return {"checkpoint": str(self.ckpt), "epochs": epochs, "train_images": len(data.train), "last_epoch": hist[-1]}

    # ---- 4. search and measure ------------------------------------------------------------------------
    def search(self) -> dict:
        opt, say = self.opt, self.say
        full_ms = Predictor(LUT.load(self.lut_path)).predict_ms(self.space.layer_specs(self.space.full()))
        self.budget = budget = opt.budget_share * full_ms
        say(f"full network predicted at {full_ms:.4g} ms; budget {opt.budget_share:.0%} of it = {budget:.4g} ms")
        cfg = EvolutionConfig(population=opt.population, generations=opt.generations,
                              parents=min(opt.parents, opt.population), seed=opt.seed)
        if self.result_path.exists():
            res = load_result(self.result_path)
            say(f"reusing {self.result_path}")
        else:
            res = search_checkpoint(self.ckpt, [str(self.lut_path)], [budget], cfg, self.result_path,
                                    resume=state_path(self.result_path).exists(), progress=say,
                                    verifier=Verifier(opt.verify), processes=opt.workers)
        plot_result(res, self.out / "search.png")
        self.result = res
        return {"budget_ms": budget, "full_predicted_ms": full_ms}

    # ---- 5. export, report --------------------------------------------------------------------
    def export(self) -> dict:
        res, space, dev = self.result, self.space, self.device.name
        ver = res["verified"]
        nets = GeneratedNets(self.pruningnet, self.data, seed=self.opt.seed)
        pick = (ver["winner_rank"] or 1) - 1
        if ver["winner_rank"] is None:
            self.say(f"warning: none of the search's best {ver['k']} archs measured under the budget here; "
                     "reporting the best one (raise --verify, or lower the budget)")
        elif pick:
            self.say(f"the search's best {pick} arch(s) measured over the budget here; the winner is its #{pick + 1}")

        def row(arch: dict, measured: float, spread: float | None, predicted: float, name: str | None) -> dict:
            net = nets.network(arch)
            if name:
                save_onnx(self.out / f"{name}.onnx", space, net)
            return {"genes": dict(arch), "predicted_ms": predicted, "measured_ms": measured, "measured_spread_ms": spread,
                    "error_pct": 100 * (predicted / measured - 1), "macs": space.macs(arch),
                    "test_accuracy": nets.accuracy(arch, "test"),
                    **({"onnx": str(self.out / f"{name}.onnx")} if name else {})}

        verified = []
        for i, (e, v) in enumerate(zip(res["top"], ver["archs"])):
            r = row(space.check_arch(e["arch"]["genes"]), v["measured_ms"][dev], v["spread_ms"][dev],
                    e["latency_ms"][dev], "winner" if i == pick else None)
            verified.append({"search_rank": e["rank"], "search_accuracy": e["accuracy"], **r})
        base, u = res["uniform_baseline"], ver["uniform"]
        uniform = None
        if base:
            uniform = {**row(space.check_arch(base["arch"]["genes"]), u["measured_ms"][dev], u["spread_ms"][dev],
                             base["latency_ms"][dev], "uniform"),
                       "ratio": base["ratio"], "search_accuracy": base["accuracy"]}
        ref = ver["reference"][dev]
        full = row(space.full(), ref["measured_ms"], None,
                   Predictor(LUT.load(self.lut_path)).predict_ms(space.layer_specs(space.full())), "full")
        winner = {**verified[pick], "search_rank": pick + 1}
        return {"winner": winner, "verified": verified, "uniform": uniform, "uniform_test": res.get("uniform_test"),
                "full": full,
                "winner_under_budget_measured": winner["measured_ms"] <= self.budget,
                "reference_drift": ref, "warnings": ver["warnings"], "result": str(self.result_path)}

    # ---- 6. retrain ------------------------------------------------------------------------------------
    def retrain(self, summary: dict) -> dict:
        """The winner, the uniform arch and the full net trained ``retrain_epochs`` each on the whole training
        set, from the PruningNet's weights or from scratch (resumable: one checkpoint each)."""
        space, opt = self.space, self.opt
        digits = opt.data == "digits"
        init = self.ckpt if opt.retrain_from == "pruningnet" else None
        archs = {"winner": summary["winner"]["genes"], "full": space.full()}
        if summary.get("uniform"):
            archs["uniform"] = summary["uniform"]["genes"]
        out = {}
        for name, genes in archs.items():
            path = self.out / f"{name}.pt"
            if path.exists():  # resuming: it must have started as asked
                started = load_checkpoint(path).header.get("init")
                if (started is None) != (init is None):
                    raise UserError(f"{path} was retrained from {'scratch' if started is None else 'the PruningNet'}, "
                                    f"not as --retrain-from {opt.retrain_from} asks; use that start or another --out")
            res = train_plain(space, genes, self.data, epochs=opt.retrain_epochs, seed=opt.seed,
                              batch_size=32 if digits else None, lr=0.02 if digits else None,
                              init=init, out=path, resume=True, progress=False)
            out[name] = res.test_acc
            self.say(f"{name}: test accuracy {res.test_acc:.2%} after {opt.retrain_epochs} epochs {self.retrained()}")
        return out

    def retrained(self) -> str:
        return "from the PruningNet's weights" if self.opt.retrain_from == "pruningnet" else "from scratch"

    def report(self, summary: dict) -> None:
        say, budget = self.say, summary["budget_ms"]
        say("== summary")
        say(f"budget {budget:.4g} ms ({self.opt.budget_share:.0%} of the full network's predicted "
            f"{summary['full_predicted_ms']:.4g} ms) on {self.device.name} ({cpu_model()})")
        for v in summary["verified"]:
            say(f"  search #{v['search_rank']}: predicted {v['predicted_ms']:.4g} ms, measured {v['measured_ms']:.4g} ms"
                f" ({'meets' if v['measured_ms'] <= budget else 'over'} the budget), sub-val {v['search_accuracy']:.2%}")
        base = summary.get("uniform")
        for name in ("winner", "uniform", "full"):
            a = summary.get(name)
            if not a:
                continue
            label = {"winner": "searched", "uniform": f"uniform x{base['ratio']:g}" if base else "", "full": "full"}[name]
            retrained = a.get("retrained_test_accuracy")
            say(f"{label:>14}: predicted {a['predicted_ms']:.4g} ms, measured {a['measured_ms']:.4g} ms "
                f"({a['error_pct']:+.1f}%), test accuracy {a['test_accuracy']:.2%} with the PruningNet's weights"
                + (f", {retrained:.2%} after {self.opt.retrain_epochs} epochs {self.retrained()}"
                   if retrained is not None else "")
                + (f", sub-val {a['search_accuracy']:.2%}" if "search_accuracy" in a else "")
                + f", {a['macs'] / 1e6:.2f} M MACs")
        if summary.get("uniform_test"):
            say("search #1 vs uniform " + margin_line(summary["uniform_test"]))
        say(disagreement(summary["winner"], summary["reference_drift"], budget))
        for w in summary.get("warnings", []):
            say(f"warning: {w}")
        say(f"everything is in {self.out}/ (summary.json, result.json, search.png, calibration.png, winner.onnx); "
            f"{summary['total_s']:.0f} s in all")


def disagreement(winner: dict, ref: dict, budget: float) -> str:
    """Why the winner's measurement differs from its prediction, in one line: the device's drift since
    the calibration (its reference net measured beside the winner) or the table's error on this arch."""
    err, d = winner["error_pct"], ref.get("drift_pct")
    meets = "meets" if winner["measured_ms"] <= budget else "misses"
    head = f"the winner {meets} the budget as measured ({winner['measured_ms']:.4g} vs {budget:.4g} ms)"
    drifted = f"the reference net ran {d:+.1f}% off its time at calibration" if d is not None else ""
    if abs(err) <= 10 and (d is None or abs(d) <= 10):
        return f"{head}; its prediction was {err:+.1f}% off, within the table's +-10%" + (f" ({drifted})" if d else "")
    if d is not None and abs(d) > 5 and (d > 0) == (err < 0):
        return (f"{head}; its prediction was {err:+.1f}% off and {drifted}: the machine moved since the calibration "
                "(`prune-lut calibrate` re-anchors the table)")
    return (f"{head}; its prediction was {err:+.1f}% off while {drifted or 'the device held still'}: the table "
            "mispredicts this arch (a search favours the archs a table under-predicts; --verify measured them)")


def run_quickstart(opt: QuickstartOptions, say: Callable[[str], None] = print) -> dict:
    """Run (or continue) the quickstart into ``opt.out``; returns the summary also written to summary.json."""
    t_all = time.perf_counter()
    q = Quickstart(opt, say)
    q.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"space": {**q.space.describe(), "hash": q.space.hash}, "data": opt.data, "device": q.device.name,
                     "seed": opt.seed, "processes": opt.workers, "out": str(q.out)}
    summary["lut"] = q.stage("lookup table", "lut", q.table)
    summary["calibration"] = q.stage("calibrate the table on this CPU", "calibrate", q.calibration)
    summary["training"] = q.stage(f"train a PruningNet on {opt.data}", "train", q.training)
    summary.update(q.stage("search, then measure its best archs here", "search", q.search))
    summary.update(q.stage("export and score", "export", q.export))
    if opt.retrain_epochs:
        retrained = q.stage(f"retrain the winner, the uniform arch and the full net ({opt.retrain_epochs} epochs "
                            f"each, {q.retrained()})", "retrain", lambda: q.retrain(summary))
        summary["retrain"] = {"from": opt.retrain_from, "epochs": opt.retrain_epochs}
        for name, acc in retrained.items():
            summary[name]["retrained_test_accuracy"] = acc
    summary.update({"stages_s": q.stages, "total_s": time.perf_counter() - t_all})
    write_json(q.out / "summary.json", summary)
    q.report(summary)
    return summary
