"""Bjøntegaard deltas (VCEG-M33): the average gap between two rate-distortion curves over their common range.

Each curve is fitted with a cubic (fewer points: a lower degree) in log-rate, and the fits are integrated over the
overlap: BD-PSNR integrates PSNR over log-rate; BD-rate integrates log-rate over PSNR. Positive BD-PSNR and
negative BD-rate mean the test curve is better than the anchor.
"""

from __future__ import annotations

import numpy as np


def _mean_gap(x_anchor, y_anchor, x_test, y_test) -> float:
    """Mean of (test fit - anchor fit) over the overlap of the x ranges; nan without an overlap."""
    low = max(np.min(x_anchor), np.min(x_test))
    high = min(np.max(x_anchor), np.max(x_test))
    if not high > low:
        return float("nan")
    integrals = []
    for x, y in ((x_anchor, y_anchor), (x_test, y_test)):
        degree = min(3, len(x) - 1)
        antiderivative = np.polyint(np.polyfit(x, y, degree))
        integrals.append(np.polyval(antiderivative, high) - np.polyval(antiderivative, low))
    return float((integrals[1] - integrals[0]) / (high - low))


def _curves(rate_anchor, psnr_anchor, rate_test, psnr_test):
    arrays = [np.asarray(a, dtype=np.float64) for a in (rate_anchor, psnr_anchor, rate_test, psnr_test)]
    if min(len(arrays[0]), len(arrays[2])) < 2 or (arrays[0] <= 0).any() or (arrays[2] <= 0).any():
        return None
    return np.log(arrays[0]), arrays[1], np.log(arrays[2]), arrays[3]


def bd_psnr(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Average PSNR gain (dB) of the test curve over the anchor at equal rate."""
    curves = _curves(rate_anchor, psnr_anchor, rate_test, psnr_test)
    return float("nan") if curves is None else _mean_gap(*curves)


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test) -> float:
    """Average rate change (%) of the test curve against the anchor at equal PSNR (negative: fewer bits)."""
    curves = _curves(rate_anchor, psnr_anchor, rate_test, psnr_test)
    if curves is None:
        return float("nan")
    log_anchor, p_anchor, log_test, p_test = curves
    return float((np.exp(_mean_gap(p_anchor, log_anchor, p_test, log_test)) - 1) * 100)


def pareto_front(bpp, psnr) -> tuple[np.ndarray, np.ndarray]:
    """The points no other point beats on both rate and PSNR, by increasing rate (a curve BD can fit)."""
    order = np.lexsort((-np.asarray(psnr), np.asarray(bpp)))
    keep, best = [], -np.inf
    for index in order:
        if psnr[index] > best:
            keep.append(index)
            best = psnr[index]
    return np.asarray(bpp)[keep], np.asarray(psnr)[keep]
