"""Error figures of latency predictions, the noise floor they should be read against, and the plot.

Errors are signed percentages of the measured latency: ``100 * (predicted - measured) / measured``.
Rank correlations say what a search cares about (is the faster net predicted faster?); the same
correlation for MACs shows what the table buys over counting operations.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..files import write_atomic


def _rank_corr(a, b) -> tuple[float | None, float | None]:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None
    from scipy import stats  # 1 s of imports: not on the path of every command (`predict`)

    return float(stats.spearmanr(a, b).statistic), float(stats.kendalltau(a, b).statistic)


def error_figures(predicted: Sequence[float], measured: Sequence[float]) -> dict:
    """Mean/median abs % error, RMSPE, bias, worst abs error, share within +-5/10%, Spearman, Kendall."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    if len(p) == 0:
        return {"n": 0}
    e = 100 * (p - m) / m
    a = np.abs(e)
    rho, tau = _rank_corr(p, m)
    return {"n": int(len(e)), "mean_abs_pct": float(a.mean()), "median_abs_pct": float(np.median(a)),
            "rmspe": float(math.sqrt(float(np.mean(e ** 2)))), "bias_pct": float(e.mean()), "max_abs_pct": float(a.max()),
            "within_5": float(np.mean(a <= 5)), "within_10": float(np.mean(a <= 10)),
            "spearman": rho, "kendall": tau}


def noise_floor(pairs: Sequence[tuple[float, float]]) -> dict:
    """How often two measurements of the same network agree within +-5% / +-10% (of their mean)."""
    if not pairs:
        return {"pairs": 0}
    d = np.array([abs(a - b) / ((a + b) / 2) * 100 for a, b in pairs])
    return {"pairs": int(len(d)), "within_5": float(np.mean(d <= 5)), "within_10": float(np.mean(d <= 10)),
            "median_abs_pct": float(np.median(d)), "max_abs_pct": float(d.max())}


def proxy_figures(proxy: Sequence[float], measured: Sequence[float]) -> dict:
    """Rank correlation of a proxy (MACs) with measured latency."""
    rho, tau = _rank_corr(proxy, measured)
    return {"spearman": rho, "kendall": tau}


def worst_cases(ids: Sequence, predicted: Sequence[float], measured: Sequence[float], k: int = 5) -> list[dict]:
    """The ``k`` samples with the largest absolute % error."""
    rows = [{"id": i, "predicted_ms": float(p), "measured_ms": float(m), "error_pct": float(100 * (p - m) / m)}
            for i, p, m in zip(ids, predicted, measured)]
    return sorted(rows, key=lambda r: -abs(r["error_pct"]))[:k]


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def _num(x, fmt=".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def format_figures(name: str, f: dict) -> str:
    """One line of error figures."""
    if not f.get("n"):
        return f"{name}: no samples"
    return (f"{name} (n={f['n']}): mean |err| {f['mean_abs_pct']:.1f}%, median {f['median_abs_pct']:.1f}%, "
            f"RMSPE {f['rmspe']:.1f}%, bias {f['bias_pct']:+.1f}%, within +-5% {_pct(f['within_5'])}, "
            f"+-10% {_pct(f['within_10'])}, Spearman {_num(f['spearman'])}, Kendall {_num(f['kendall'])}")


def plot(path, predicted: Sequence[float], measured: Sequence[float], macs: Sequence[float],
         heldout: Sequence[bool] | None = None, title: str = "", band: float = 0.10) -> None:
    """PNG: predicted vs measured with the +-``band`` band, and MACs vs measured beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p, m, g = np.asarray(predicted, float), np.asarray(measured, float), np.asarray(macs, float) / 1e6
    held = np.ones(len(p), bool) if heldout is None else np.asarray(heldout, bool)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.8))
    lo, hi = 0.9 * min(p.min(), m.min()), 1.1 * max(p.max(), m.max())
    xs = np.linspace(lo, hi, 50)
    ax.plot(xs, xs, "k-", lw=1, label="predicted = measured")
    ax.fill_between(xs, xs * (1 - band), xs * (1 + band), color="tab:green", alpha=0.15, label=f"+-{band:.0%}")
    if (~held).any():
        ax.scatter(m[~held], p[~held], s=18, c="tab:gray", marker="x", label="used for fitting")
    ax.scatter(m[held], p[held], s=18, c="tab:blue", label="held out" if heldout is not None else "samples")
    f = error_figures(p[held], m[held])
    ax.set(xlabel="measured latency (ms)", ylabel="predicted latency (ms)", xlim=(lo, hi), ylim=(lo, hi),
           title=f"table prediction: {_pct(f.get('within_10'))} within +-{band:.0%}, "
                 f"Spearman {_num(f.get('spearman'))}")
    ax.legend(loc="upper left", fontsize=8)
    rho = proxy_figures(g, m)["spearman"]
    bx.scatter(g, m, s=18, c="tab:orange")
    bx.set(xlabel="MACs (M)", ylabel="measured latency (ms)", title=f"MACs as a proxy: Spearman {_num(rho)}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)
