"""Bjøntegaard deltas: the average gap between two rate-distortion curves over their common range only.

BD-PSNR is the mean PSNR gap over the overlap of the two log-rate ranges; BD-rate is the mean log-rate gap over
the overlap of the PSNR ranges, as a percentage. Positive BD-PSNR and negative BD-rate mean the test curve is
better than the anchor.

How the gap is measured (the VCEG-M33 cubic through a whole sweep is biased: a synthetic JPEG + 1 dB came out at
1.05-1.25 dB against JPEG's 99-point sweep): each curve is a piecewise-cubic Hermite interpolant (scipy's pchip,
as recent codec papers recommend), which follows its own points and does not overshoot. The gap is then taken
at the points of the sparser curve inside the overlap (plus the overlap's ends), where that curve is known
exactly and the denser one is interpolated locally, and integrated with pchip over the overlap. A curve that is
exactly another one shifted in PSNR or scaled in rate therefore gives exactly the shift (tests/test_compression
_rates.py), whatever the spacing of its points.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator


def _curve(x, y) -> tuple[np.ndarray, np.ndarray] | None:
    """Points sorted by x with repeated x values averaged; None when fewer than two distinct x remain."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    unique, inverse = np.unique(x, return_inverse=True)
    if len(unique) < 2:
        return None
    return unique, np.bincount(inverse, weights=y) / np.bincount(inverse)


def mean_gap(x_anchor, y_anchor, x_test, y_test) -> float:
    """Mean of (test - anchor) over the overlap of the two x ranges; nan without an overlap."""
    anchor, test = _curve(x_anchor, y_anchor), _curve(x_test, y_test)
    if anchor is None or test is None:
        return float("nan")
    low, high = max(anchor[0][0], test[0][0]), min(anchor[0][-1], test[0][-1])
    if not high > low:
        return float("nan")
    inside = lambda x: x[(x > low) & (x < high)]  # noqa: E731
    sparse = min(anchor[0], test[0], key=lambda x: len(inside(x)))
    nodes = np.concatenate([[low], inside(sparse), [high]])
    gap = PchipInterpolator(*test)(nodes) - PchipInterpolator(*anchor)(nodes)
    if len(nodes) == 2:
        return float(gap.mean())
    return float(PchipInterpolator(nodes, gap).integrate(low, high) / (high - low))


def _log_rates(rate_anchor, rate_test) -> tuple[np.ndarray, np.ndarray] | None:
    rates = [np.asarray(r, dtype=np.float64) for r in (rate_anchor, rate_test)]
    if any((r <= 0).any() for r in rates):
        return None
    return np.log(rates[0]), np.log(rates[1])


def bd_psnr(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Average PSNR gain (dB) of the test curve over the anchor at equal rate, over their common rates."""
    logs = _log_rates(rate_anchor, rate_test)
    return float("nan") if logs is None else mean_gap(logs[0], psnr_anchor, logs[1], psnr_test)


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Average rate change (%) of the test curve against the anchor at equal PSNR (negative: fewer bits).

    Rate is a function of PSNR only on a curve whose PSNR rises with rate: pass Pareto fronts."""
    logs = _log_rates(rate_anchor, rate_test)
    if logs is None:
        return float("nan")
    return float((np.exp(mean_gap(psnr_anchor, logs[0], psnr_test, logs[1])) - 1) * 100)


def pareto_front(bpp, psnr) -> tuple[np.ndarray, np.ndarray]:
    """The points no other point beats on both rate and PSNR, by increasing rate (a curve BD can fit)."""
    bpp, psnr = np.asarray(bpp, dtype=np.float64), np.asarray(psnr, dtype=np.float64)
    order = np.lexsort((-psnr, bpp))
    keep, best = [], -np.inf
    for index in order:
        if psnr[index] > best:
            keep.append(index)
            best = psnr[index]
    return bpp[keep], psnr[keep]
