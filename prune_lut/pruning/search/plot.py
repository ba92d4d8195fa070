"""The search's plot: every arch scored, the Pareto front, the budget, the best arch and the uniform baseline."""
from __future__ import annotations

import os

from ...files import write_atomic


def plot_result(result: dict, path: str | os.PathLike, device: str | None = None) -> None:
    """PNG: every arch evaluated (accuracy vs predicted latency), the Pareto front, budget, baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dev = device or result["devices"][0]
    ev = result["evaluated"]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    sc = ax.scatter([e["latency_ms"][dev] for e in ev], [100 * e["accuracy"] for e in ev],
                    c=[e["generation"] for e in ev], cmap="viridis", s=10, alpha=0.7, label="evaluated")
    fig.colorbar(sc, ax=ax, label="generation")
    pf = result["pareto"][dev]
    ax.step([e["latency_ms"][dev] for e in pf], [100 * e["accuracy"] for e in pf], where="post",
            color="tab:red", lw=1.5, label="Pareto front")
    budget = next(b["latency_ms"] for b in result["budgets"]["latency"] if b["device"] == dev)
    ax.axvline(budget, color="k", ls="--", lw=1, label=f"budget {budget:g} ms")
    best = result["top"][0]
    ax.scatter([best["latency_ms"][dev]], [100 * best["accuracy"]], marker="*", s=180, color="tab:red",
               edgecolor="k", zorder=5, label="best")
    base = result.get("uniform_baseline")
    if base:
        ax.scatter([base["latency_ms"][dev]], [100 * base["accuracy"]], marker="D", s=60, color="tab:orange",
                   edgecolor="k", zorder=5, label=f"uniform x{base['ratio']:g}")
    ax.set_xlabel(f"predicted latency on {dev} (ms)")
    ax.set_ylabel("top-1 on sub-validation (%)")
    ax.set_title(f"search: {result['space']['family']}, {result['evaluations']} archs, seed {result['seed']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    try:
        write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
