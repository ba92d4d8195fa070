"""Whether two archs differ on images the search never scored on: McNemar's exact test, image by image."""
from __future__ import annotations

from math import comb


def paired_margin(best, base) -> dict:
    """McNemar's exact test of two archs' hits (bool tensors) on the same images.

    Only the images one arch gets right and the other wrong tell them apart; under "equally
    accurate" each of those is a coin flip, and ``p`` (two-sided) says whether the margin is more
    than these images' sampling noise. Give it images the search did not select on: the best of a
    thousand archs scored on the sub-validation split beats the rest there partly by that split's
    noise (a winner's curse). It says nothing of training from scratch, where the search's winners
    have tied the uniform arch on Fashion-MNIST (docs/BENCHMARKS.md).
    """
    only_best, only_base = int((best & ~base).sum()), int((base & ~best).sum())
    n, k = only_best + only_base, min(only_best, only_base)
    p = min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return {"images": len(best), "only_best": only_best, "only_uniform": only_base, "p": p}


def margin_line(t: dict) -> str:
    """:func:`paired_margin`'s record in words."""
    return (f"on the {t['images']} test images (the search never scored on them) {t['only_best']} only "
            f"the best gets right, {t['only_uniform']} only uniform: McNemar p {t['p']:.2g}"
            + ("" if t["p"] < 0.05 else " (the PruningNet's weights cannot tell them apart)"))
