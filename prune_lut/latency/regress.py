"""Fill table entries that were not measured with a regressor on layer-spec features.

Used when a build runs out of its time budget: the measured entries train a gradient-boosted
tree model on log latency; a held-out fifth of them gives the error figure stored in the LUT
(``lut.regressor``). Nothing is pickled: the predicted values are written as entries marked
``predicted``.
"""
from __future__ import annotations

import logging
import math
import random

import numpy as np

from .spec import OPS, LayerSpec

log = logging.getLogger(__name__)
ACTS = ("none", "relu", "relu6")
FEATURES = [f"op_{o}" for o in OPS] + [f"act_{a}" for a in ACTS] + [
    "log_size", "log_cin", "log_cout", "kernel", "stride", "depthwise", "residual", "log_macs",
    "log_in_elems", "log_out_elems", "log_params"]


def features(spec: LayerSpec) -> list[float]:
    """Numeric features of one spec (what decides its latency, in log scale where it spans decades)."""
    lg = lambda x: math.log(max(x, 1))  # noqa: E731
    o = spec.out_size
    params = spec.cout * (spec.cin // max(spec.groups, 1)) * spec.kernel ** 2 if spec.op in ("conv", "linear") else 0
    return ([float(spec.op == x) for x in OPS] + [float(spec.act == a) for a in ACTS] + [
        lg(spec.size), lg(spec.cin), lg(spec.cout), spec.kernel, spec.stride,
        float(spec.groups > 1 and spec.groups == spec.cin), float(spec.residual), lg(spec.macs),
        lg(spec.size * spec.size * spec.cin), lg(o * o * spec.cout), lg(params)])


FLOOR_MS = 1e-4  # fused-away operators measure 0; log needs a floor
MIN_MEASURED = 10  # fewer measured entries than this: no regressor


def _model(seed: int):
    from sklearn.ensemble import HistGradientBoostingRegressor

    # on the 224 cpu table: 4.8% held-out median error vs 5.1% for GradientBoosting(400, depth 4),
    # 5.7% for ExtraTrees; the entries' own build-to-build noise is about that size
    return HistGradientBoostingRegressor(max_iter=800, learning_rate=0.05, random_state=seed)


def fit_and_fill(measured: dict[str, float], wanted: list[str], seed: int = 0,
                 holdout: float = 0.2) -> tuple[dict[str, float], dict]:
    """Predict ``wanted`` keys from ``measured`` {key: ms}; return (predictions, error figures).

    The error figures come from a model trained without a random ``holdout`` share of the
    measured entries and scored on them (relative error |pred - meas| / meas, on entries over
    the floor); the predictions from a model trained on all of them.
    """
    X, y = _training_set(measured)
    idx = list(range(len(y)))
    random.Random(seed).shuffle(idx)
    n_test = max(1, int(len(idx) * holdout))
    test, train = idx[:n_test], idx[n_test:]
    m = _model(seed).fit(X[train], y[train])
    pred = np.exp(m.predict(X[test]))
    true = np.exp(y[test])
    ok = true > 10 * FLOOR_MS
    rel = np.abs(pred[ok] - true[ok]) / true[ok]
    figures = {"model": "sklearn HistGradientBoostingRegressor on log(ms)", "features": FEATURES, "seed": seed,
               "n_train": len(train), "n_heldout": int(ok.sum()),
               "heldout_median_abs_rel_err": float(np.median(rel)) if len(rel) else None,
               "heldout_p90_abs_rel_err": float(np.percentile(rel, 90)) if len(rel) else None,
               "n_predicted": len(wanted)}
    log.info("regressor held-out median abs error %.1f%% on %d entries",
             100 * (figures["heldout_median_abs_rel_err"] or 0), len(rel))
    if not wanted:
        return {}, figures
    return _fit_predict(X, y, wanted, seed), figures


def fit_predict(measured: dict[str, float], wanted: list[str], seed: int = 0) -> dict[str, float]:
    """Predict ``wanted`` keys from a model trained on all of ``measured`` {key: ms} (no error figures:
    half the time of :func:`fit_and_fill`, for a caller that fills a few keys at prediction time)."""
    X, y = _training_set(measured)
    return _fit_predict(X, y, wanted, seed)


def _training_set(measured: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Features and log latency of the measured entries (key order), or ValueError when too few."""
    if len(measured) < MIN_MEASURED:
        raise ValueError(f"only {len(measured)} measured entries: too few to fit a regressor (need >= {MIN_MEASURED})")
    keys = sorted(measured)
    X = np.array([features(LayerSpec.from_key(k)) for k in keys])
    return X, np.log(np.maximum([measured[k] for k in keys], FLOOR_MS))


def _fit_predict(X: np.ndarray, y: np.ndarray, wanted: list[str], seed: int) -> dict[str, float]:
    full = _model(seed).fit(X, y)
    Xw = np.array([features(LayerSpec.from_key(k)) for k in wanted])
    return dict(zip(wanted, map(float, np.exp(full.predict(Xw)))))
