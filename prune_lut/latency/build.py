"""Build a lookup table by profiling whole networks and attributing node times to keys.

Why whole networks: isolated one-layer sessions summed to 1.47x-1.69x of a network's end-to-end
latency here (session overhead, cold caches, layout reorders at every boundary), while ORT's
per-node profile of a whole network accounts for ~92% of its run time. So every key is measured
*in context*: the caller supplies :class:`Network` s whose ONNX node names are ``<key>#<position>``
(``pruning/export.py`` with ``key_names=True``), each is profiled per node, and each node's
median duration is attributed to its key (fused nodes are mapped back through their output
tensor names; an operator fused into another one, like ORT's Conv+Add, is recorded as 0 ms
because its time is in the conv it joined; profile names that map to no key, like layout
reorders, count as the network's ``unattributed`` time). A key seen in several networks keeps up
to ``MAX_OBS`` in-context observations (entry fields ``obs``, ``spreads``, and ``refs``: the
reference network's time measured in the same call); its ``median_ms`` is their median. Node
times are stored as profiled: at 224x224 a network's per-node medians summed to within ~1-2% of
its end-to-end time without profiling, while rescaling them by (plain / profiled end-to-end)
under-predicted by ~15%.

What the table stores beside entries, so sums can predict whole networks (``lut.extra``):
  ``networks``: one record per profiled network: ``id``, ``keys`` (in order), ``e2e_ms`` (end to
    end, profiling off), ``spread_ms``, ``profiled_ms`` (end to end, profiling on), ``node_sum_ms``
    (sum of its attributed node medians), ``unattributed_ms``, ``ref_ms`` (the reference network,
    measured interleaved in the same call), ``t`` (seconds since the build started);
  ``sum_to_e2e``: ``e2e = a * table_sum + b``, a Theil-Sen line over the networks profiled while
    the machine was quiet (see :func:`quiet`), with its error on networks that defined no entry
    (``heldout``); the predictor applies it until a calibration from ``calibrate`` replaces it;
  ``build``: elapsed seconds, time budget, shard, targets, networks done.
``lut.reference``: the reference network (the space's full-width member) end to end, first and last
measurement of the build, for drift detection (``keys`` lets anyone recompute its table sum).

Resumable: the file is rewritten atomically every ``SAVE_EVERY_S`` seconds (after a group of
networks) and when the build stops, Ctrl-C included; a resumed build plans
networks only for keys still missing, so nothing stored is measured again.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..errors import UserError
from .attribution import attribute
from .lutfile import LUT
from .worker import protocol_with_defaults

log = logging.getLogger(__name__)
MAX_OBS = 5
QUIET_TOL = 0.05
RETRY_PASSES = 2
RETRY_MIN_SHARE = 0.01  # fewer noisy keys than this share of the targets: not worth a pass
SAVE_EVERY_S = 5.0
MIN_LINE_NETWORKS = 10  # fewer networks than this: sum_to_e2e is a ratio, not a line


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"i/n"`` (1-based) -> (i, n)."""
    if shard is None:
        return None
    try:
        i, n = (int(x) for x in shard.split("/"))
        if not 1 <= i <= n:
            raise ValueError
    except ValueError:
        raise UserError(f"--shard {shard!r}: expected i/n with 1 <= i <= n, e.g. 1/2") from None
    return i, n


def open_table(out: str | Path, device, meter, space: dict, keys: list[str], shard: str | None = None,
               resume: bool = False, force: bool = False) -> tuple[LUT, list[str]]:
    """The table a build writes, and the keys this build (or shard) measures.

    A new table records this host's provenance (``meter.info()``, the device's protocol, the date)
    and ``space``, an opaque description holding at least ``hash``; with ``resume`` an existing
    table is reopened, refused when it was built for another space, device profile or shard; with
    ``force`` a new table replaces it (at the first save); with neither, an existing table is refused.
    """
    out = Path(out)
    sh = parse_shard(shard)
    keys = sorted(keys)
    targets = keys[sh[0] - 1::sh[1]] if sh else keys
    if resume and force:
        raise UserError("give --resume (continue the build in --out) or --force (start it over), not both")
    if out.exists() and not (resume or force):
        raise UserError(f"{out} exists; pass --resume to continue that build, or --force to start over")
    if out.exists() and resume:
        lut = LUT.load(out, space_hash=space["hash"], space=space)
        if lut.device != device.to_dict():
            raise UserError(f"{out} was measured with another profile of device {lut.device.get('name')!r}; "
                            f"resume it with that profile, or build into another --out")
        if lut.extra.get("shard") != shard:
            raise UserError(f"{out} is shard {lut.extra.get('shard')} but --shard {shard} was given; give the same")
        log.info("resuming %s: %d entries stored", out, len(lut.entries))
        return lut, targets
    lut = LUT(device=device.to_dict(), provenance={
        **meter.info(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "protocol": protocol_with_defaults(device.protocol), "threads": device.threads,
        "precision": device.precision, "method": "per-node profile of whole networks (latency/build.py)",
        "prune_lut": _version()}, space={**space, "keys": len(keys)}, extra={"shard": shard})
    return lut, targets


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("prune-lut")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class Network:
    """A network to profile: a stable ``id``, its layer keys in order, and its ONNX (key-named) bytes."""

    id: str
    keys: list[str]
    onnx: Callable[[], bytes]


def prefetched(nets: list[Network], ahead: int = 8) -> list[Network]:
    """The same networks, exported ``ahead`` of use in one background thread (export overlaps measuring)."""
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="onnx-export")
    futures: dict[int, object] = {}

    def get(i: int) -> bytes:
        for j in range(i, min(i + ahead + 1, len(nets))):
            if j not in futures:
                futures[j] = pool.submit(nets[j].onnx)
        return futures.pop(i).result()

    return [Network(n.id, n.keys, (lambda i=i: get(i))) for i, n in enumerate(nets)]


# ---- building ----------------------------------------------------------------------------------
def _record(lut: LUT, key: str, ms: float, spread: float, reps: int, ref_ms: float) -> None:
    """Add one in-context observation: the node's profiled median and the reference beside it.

    A full entry (``MAX_OBS``) swaps its noisiest observation (slowest reference) for a quieter one.
    """
    e = lut.entries.get(key)
    if e is None or e["source"] != "measured":
        lut.add(key, ms, spread, reps, obs=[ms], spreads=[spread], refs=[ref_ms])
        return
    e.setdefault("refs", [0.0] * len(e["obs"]))  # tables from before refs were kept: count as quiet
    if len(e["obs"]) >= MAX_OBS:
        worst = int(np.argmax(e["refs"]))
        if e["refs"][worst] <= ref_ms:
            return
        for f in ("obs", "spreads", "refs"):
            e[f].pop(worst)
    e["obs"].append(ms)
    e["spreads"].append(spread)
    e["refs"].append(ref_ms)
    e["reps"] += reps
    _settle(e, None)


def _settle(e: dict, limit: float | None) -> None:
    """An entry's median and spread over its quiet observations (reference <= ``limit``), else all."""
    refs = e.get("refs") or [0.0] * len(e["obs"])
    keep = [i for i, r in enumerate(refs) if limit is None or r <= limit] or range(len(e["obs"]))
    e["median_ms"] = float(np.median([e["obs"][i] for i in keep]))
    e["spread_ms"] = float(np.median([e["spreads"][i] for i in keep]))


def quiet_limit(lut: LUT, tol: float = QUIET_TOL) -> float | None:
    """The slowest reference time that still counts as a quiet machine (see :func:`quiet`)."""
    refs = [n["ref_ms"] for n in lut.extra.get("networks", []) if n.get("ref_ms")]
    return float(np.percentile(refs, 20)) * (1 + tol) if refs else None


def quiet(nets: list[dict], tol: float = QUIET_TOL) -> list[dict]:
    """The networks profiled while the machine was quiet: their reference (measured in the same
    call) within ``tol`` of the build's 20th-percentile reference time."""
    refs = [n["ref_ms"] for n in nets if n.get("ref_ms")]
    if not refs:
        return nets
    limit = float(np.percentile(refs, 20)) * (1 + tol)
    return [n for n in nets if n.get("ref_ms") and n["ref_ms"] <= limit]


def fit_sum_to_e2e(lut: LUT, heldout_ids: set[str] = frozenset()) -> dict | None:
    """Robust line ``e2e = a * table_sum + b`` over the build's quiet networks (module docstring).

    Theil-Sen on the networks profiled while the reference ran at its usual speed: a build on a
    shared machine sees minutes where other jobs slow everything 2x, and an ordinary least-squares
    line through those points predicted held-out networks 15% off instead of 5%. Fewer than
    ``MIN_LINE_NETWORKS`` networks, or a slope that is not positive (a few networks of nearly equal
    sums, as in a tiny space, once gave a = -1.07 and ranked the full net below the smallest), get a
    line through the origin instead: ``a`` = the median of e2e / sum.
    """
    nets = [n for n in lut.extra.get("networks", []) if all(k in lut.entries for k in n["keys"])]
    used = [n for n in nets if n["id"] not in heldout_ids]
    fit = quiet(used)
    if len(fit) < 20:
        fit = used
    if len(fit) < 3:
        return None
    from sklearn.linear_model import TheilSenRegressor

    s = np.array([sum(lut.entries[k]["median_ms"] for k in n["keys"]) for n in fit])
    e = np.array([n["e2e_ms"] for n in fit])
    m = TheilSenRegressor(random_state=0).fit(s[:, None], e)
    a, b, method = float(m.coef_[0]), float(m.intercept_), "Theil-Sen on quiet networks"
    if len(fit) < MIN_LINE_NETWORKS or a <= 0:
        a, b, method = float(np.median(e / s)), 0.0, "median e2e / sum (too few networks, or a slope <= 0)"
    out = {"a": a, "b": b, "n": len(fit), "n_networks": len(used), "method": method,
           "quiet_tol": QUIET_TOL, "median_abs_rel_err": float(np.median(np.abs(a * s + b - e) / e)),
           "raw_sum_over_e2e_median": float(np.median(s / e))}
    held = [n for n in nets if n["id"] in heldout_ids]
    if held:
        hs = np.array([sum(lut.entries[k]["median_ms"] for k in n["keys"]) for n in held])
        he = np.array([n["e2e_ms"] for n in held])
        rel = np.abs(a * hs + b - he) / he
        out["heldout"] = {"n": len(held), "median_abs_rel_err": float(np.median(rel)),
                          "max_abs_rel_err": float(rel.max()), "within_10pct": float(np.mean(rel <= 0.10)),
                          "raw_sum_median_abs_rel_err": float(np.median(np.abs(hs - he) / he))}
    return out


def build_table(lut: LUT, path: str | Path, meter, plan: Callable[[list[str]], Iterable[Network]],
                targets: list[str], reference: Network, heldout: list[Network] = (),
                group: int = 4, time_budget_s: float | None = None, seed: int = 0,
                progress: bool = True) -> LUT:
    """Profile networks until every key of ``targets`` has an entry, saving ``lut`` to ``path`` as it goes.

    ``plan(missing_keys)`` returns the networks to profile (covering those keys); ``reference`` is
    measured beside every group (drift trace) and stored in ``lut.reference``; ``heldout``
    networks are profiled at the end and not used for entries (they score ``sum_to_e2e``).
    Past ``time_budget_s`` (total over resumed runs) the remaining keys are filled by the regressor.
    """
    from tqdm import tqdm

    from .regress import fit_and_fill

    path = Path(path)
    b = lut.extra.setdefault("build", {"elapsed_s": 0.0, "networks_done": 0})
    b.update({"targets": len(targets), "time_budget_s": time_budget_s, "seed": seed, "group": group})
    lut.extra.setdefault("networks", [])
    done_ids = {n["id"] for n in lut.extra["networks"]}
    start, elapsed0 = time.monotonic(), b["elapsed_s"]
    ref_bytes = reference.onnx()

    def elapsed() -> float:
        return elapsed0 + time.monotonic() - start

    def groups(chunks: list[list[Network]], budget: bool):
        """(networks, their ONNX, results) per chunk, as results arrive. A meter with ``stream``
        (``latency/remote.py``) keeps the next chunks in flight and spreads them over its boards."""
        exported: dict[int, list[bytes]] = {}

        def batches():
            for i, chunk in enumerate(chunks):
                # the first group of a run is always measured, so a resumed over-budget build
                # (or a budget shorter than planning) still makes progress
                if budget and time_budget_s is not None and elapsed() >= time_budget_s and (i or measured_any):
                    return
                exported[i] = [n.onnx() for n in chunk]
                yield [ref_bytes] + exported[i]

        def flags(models: list[bytes]) -> list[bool]:
            return [False] + [True] * (len(models) - 1)  # the reference is timed, not profiled

        if hasattr(meter, "stream"):
            for i, res, _board in meter.stream((m, flags(m)) for m in batches()):
                yield chunks[i], exported.pop(i), res
        else:
            for i, models in enumerate(batches()):
                yield chunks[i], exported.pop(i), meter.measure_many(models, nodes=flags(models), protocol=None)

    def store(nets: list[Network], models: list[bytes], res: list[dict], use: bool, label: str = "heldout") -> None:
        ref = res[0]
        if lut.reference is None:
            lut.reference = {"id": reference.id, "keys": reference.keys, "median_ms": ref["median_ms"],
                             "spread_ms": ref["spread_ms"], "reps": ref["reps"], "first_ms": ref["median_ms"]}
        lut.reference["last_ms"] = ref["median_ms"]
        for net, model, r in zip(nets, models, res[1:]):
            per_pos, other = attribute(model, r["nodes"], r.get("node_spreads"))
            if use:
                for p, (key, ms, spread) in sorted(per_pos.items()):
                    _record(lut, key, ms, spread, r["node_reps"], ref["median_ms"])
            lut.extra["networks"].append({
                "id": net.id, "keys": net.keys, "e2e_ms": r["median_ms"], "spread_ms": r["spread_ms"],
                "reps": r["reps"], "profiled_ms": r["profiled_median_ms"], "node_sum_ms": float(sum(
                    ms for _, ms, _ in per_pos.values())), "unattributed_ms": other, "ref_ms": ref["median_ms"],
                "t": round(elapsed(), 2), "heldout": not use, "pass": label, **({"board": r["board"]} if r.get("board") else {})})

    measured_any = False

    def run_pass(keys: list[str], label: str) -> None:
        nonlocal done_ids, measured_any
        nets = prefetched([n for n in plan(keys) if n.id not in done_ids] if keys else [])
        log.info("%s: %d keys with %d networks", label, len(keys), len(nets))
        bar = tqdm(total=len(nets), desc=f"{label} {len(keys)} keys", unit="net",
                   disable=None if progress else True)  # None: no bar where stderr is no terminal (a log file)
        last_save = time.monotonic()
        try:
            for chunk, models, res in groups([nets[i:i + group] for i in range(0, len(nets), group)], budget=True):
                store(chunk, models, res, use=True, label=label)
                done_ids |= {n.id for n in chunk}
                measured_any = True
                b["elapsed_s"] = round(elapsed(), 2)
                b["networks_done"] = b.get("networks_done", 0) + len(chunk)
                if time.monotonic() - last_save >= SAVE_EVERY_S:  # a save costs ~0.3 s on a full table
                    lut.save(path)
                    last_save = time.monotonic()
                bar.update(len(chunk))
        finally:
            bar.close()
            if measured_any or lut.entries:  # also on Ctrl-C; a kill -9 loses at most SAVE_EVERY_S; a first
                lut.save(path)  # group that failed leaves no empty table (or replaces none, with --force)

    run_pass([k for k in targets if k not in lut.measured_keys()], "profiling")
    over_budget = time_budget_s is not None and elapsed() >= time_budget_s
    # keys whose every observation came from a minute when other jobs slowed the machine: again
    for _ in range(RETRY_PASSES):
        limit = quiet_limit(lut, 2 * QUIET_TOL)
        noisy = [k for k in targets if k in lut.measured_keys() and limit is not None
                 and min(lut.entries[k].get("refs") or [0.0]) > limit]
        if over_budget or len(noisy) <= RETRY_MIN_SHARE * len(targets):
            break
        run_pass(noisy, "re-profiling (noisy)")
    limit = quiet_limit(lut, 2 * QUIET_TOL)
    for e in lut.entries.values():
        if e["source"] == "measured":
            _settle(e, limit)
    b["quiet_limit_ms"] = limit
    held_ids = {n["id"] for n in lut.extra["networks"] if n.get("heldout")}
    todo_held = [n for n in heldout if n.id not in held_ids]
    if todo_held:  # cheap (a few networks), and the only unbiased score of sum_to_e2e
        for chunk, models, res in groups([todo_held[i:i + group] for i in range(0, len(todo_held), group)],
                                         budget=False):
            store(chunk, models, res, use=False)
            lut.save(path)  # a build stopped here keeps them too
        held_ids |= {n.id for n in todo_held}

    # fill what was not measured (or drop stale predictions), with the regressor's error figures
    measured = {k: lut.entries[k]["median_ms"] for k in lut.measured_keys()}
    wanted = [k for k in targets if k not in measured]
    for k in [k for k, e in lut.entries.items() if e["source"] == "predicted"]:
        del lut.entries[k]
    if len(measured) >= 10:
        preds, figures = fit_and_fill(measured, wanted, seed=seed)
        figures["used"] = bool(wanted)
        lut.regressor = figures
        for k, ms in preds.items():
            lut.add(k, ms, 0.0, 0, source="predicted")
    elif wanted:
        log.warning("only %d entries measured: too few to fit the regressor; %d keys stay missing "
                    "(resume with a larger --time-budget)", len(measured), len(wanted))
    b["elapsed_s"] = round(elapsed(), 2)
    b["complete"] = all(k in lut.entries for k in targets)
    b["measured"] = sum(1 for k in targets if k in measured)
    lut.extra["sum_to_e2e"] = fit_sum_to_e2e(lut, held_ids)
    lut.save(path)
    return lut
