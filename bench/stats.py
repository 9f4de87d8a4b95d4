"""The statistics behind a verdict: confidence intervals of means, and paired tests against a reference.

Intervals are Student-t intervals over the scores given (images x seeds); the paired test is the exact
Wilcoxon signed-rank test over per-image mean differences (seeds averaged first, so one image counts once).
With n images the smallest two-sided p the test can give is 2 / 2^n (0.0625 for 5 images): say so rather
than over-read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as scipy_stats

LEVEL = 0.95


def ci_half_width(values: Sequence[float], level: float = LEVEL) -> float:
    """Half-width of the t-interval of the mean of `values`; nan for fewer than two values."""
    values = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(values) < 2:
        return float("nan")
    return float(scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided exact Wilcoxon signed-rank p of paired differences; nan with fewer than two non-zero ones."""
    differences = np.asarray([d for d in differences if d is not None and math.isfinite(d)], dtype=float)
    if np.count_nonzero(differences) < 2:
        return float("nan")
    return float(scipy_stats.wilcoxon(differences, zero_method="wilcox", method="exact").pvalue)


@dataclass(frozen=True)
class PairedComparison:
    """How a representation compares with a reference over paired runs (one pair per image and seed)."""

    mean: float  # mean difference over images x seeds
    ci95: float  # half-width of its 95 % t-interval (nan for one pair)
    p: float  # Wilcoxon over the per-image mean differences (nan for fewer than two images)
    images: int
    pairs: int

    @property
    def verdict(self) -> str:
        if not math.isfinite(self.ci95):
            return "one run: no interval"
        if self.mean - self.ci95 > 0:
            return "above"
        if self.mean + self.ci95 < 0:
            return "below"
        return "not distinguishable"


def paired_comparison(differences_by_image: dict[str, list[float]]) -> PairedComparison:
    """`differences_by_image`: image -> the differences of its seeds (representation minus reference)."""
    flat = [d for values in differences_by_image.values() for d in values]
    per_image = [float(np.mean(values)) for values in differences_by_image.values() if values]
    return PairedComparison(float(np.mean(flat)) if flat else float("nan"), ci_half_width(flat),
                            wilcoxon_p(per_image), len(per_image), len(flat))
