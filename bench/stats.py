"""The statistics behind a verdict, with the image as the unit: seeds on one image are not independent draws of
the image population, so each image's seeds are averaged first and every interval and test runs over images.

- `paired_comparison`: a representation against a reference row on the same images: the mean per-image
  difference with its 95 % t-interval (df = images - 1), and the exact two-sided Wilcoxon signed-rank p. The
  verdict is the test's, after Holm's correction across the representations of a table (`holm`).
- `friedman`: all methods of a table ranked on each image, the Friedman test of "all rank alike", and the
  Nemenyi critical difference (Demšar 2006) for a critical-difference diagram.

A fit that produced no score (an error) is never dropped: in a paired comparison it counts as worse than every
scored difference (the largest negative rank), and in the Friedman ranks it ranks last on its image.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

LEVEL = 0.95
ALPHA = 1 - LEVEL


def _finite(values: Sequence[float | None]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def ci_half_width(values: Sequence[float], level: float = LEVEL) -> float:
    """Half-width of the t-interval of the mean of `values` (independent draws); nan for fewer than two."""
    values = _finite(values)
    if len(values) < 2:
        return float("nan")
    return float(scipy_stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def per_image_means(values_by_image: Mapping[str, Sequence[float | None]]) -> dict[str, float]:
    """Each image's mean over its seeds: nan where no seed has a finite value (a failed fit)."""
    means = {}
    for image, values in values_by_image.items():
        finite = _finite(values)
        means[image] = float(finite.mean()) if len(finite) else float("nan")
    return means


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p of paired differences (exact where scipy can; -inf stands for a failed
    fit, the largest negative rank); nan with fewer than two non-zero differences."""
    differences = np.asarray([d for d in differences if d is not None and not math.isnan(d)], dtype=float)
    if np.isneginf(differences).any():  # ranks only see magnitudes: "worse than any other" is the largest one
        scored = differences[np.isfinite(differences)]
        differences = np.where(np.isneginf(differences), -(np.abs(scored).max(initial=0.0) + 1.0), differences)
    if np.count_nonzero(differences) < 2:
        return float("nan")
    return float(scipy_stats.wilcoxon(differences, zero_method="wilcox", method="auto").pvalue)


def smallest_wilcoxon_p(images: int) -> float:
    """The smallest two-sided p the signed-rank test can give with `images` pairs: 2 / 2^n (0.0625 for 5)."""
    return 2.0 / 2 ** images if images > 0 else 1.0


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (nan stays nan and is not counted among the hypotheses)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None and not math.isnan(p)]
    adjusted = [float("nan")] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (len(indexed) - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class PairedComparison:
    """A representation minus a reference on the same images (per-image means over seeds)."""

    mean: float  # mean per-image difference over the scored images
    ci95: float  # half-width of its 95 % t-interval over those images (nan for one)
    p: float  # Wilcoxon signed-rank over all images (failed fits count as the worst)
    images: int  # images compared
    failed: int  # of which the representation has no score (an error on every seed)
    median: float  # median per-image difference (failed fits as -inf): the direction of a verdict
    p_adjusted: float = float("nan")  # Holm across the table's representations (set by `with_holm`)

    def verdict(self, alpha: float = ALPHA) -> str:
        """The adjusted test's verdict: 'above' / 'below' where it rejects, the direction from the median."""
        p = self.p_adjusted if math.isfinite(self.p_adjusted) else self.p
        if smallest_wilcoxon_p(self.images) >= alpha or not math.isfinite(p):
            return "too few images"  # no outcome of the test could reject: say so rather than "not distinguishable"
        if p >= alpha:
            return "not distinguishable"
        return "above" if self.median > 0 else "below"


def paired_comparison(differences_by_image: Mapping[str, Sequence[float | None]]) -> PairedComparison:
    """`differences_by_image`: image -> the differences of its seeds (representation minus reference); a
    seed's difference is None or nan where the representation failed on it."""
    means = per_image_means(differences_by_image)
    values = np.asarray([-math.inf if math.isnan(m) else m for m in means.values()], dtype=float)
    scored = values[np.isfinite(values)]
    return PairedComparison(
        mean=float(scored.mean()) if len(scored) else float("nan"), ci95=ci_half_width(scored),
        p=wilcoxon_p(values), images=len(values), failed=int(np.isneginf(values).sum()),
        median=float(np.median(values)) if len(values) else float("nan"))


def with_holm(comparisons: Mapping[str, PairedComparison]) -> dict[str, PairedComparison]:
    """The same comparisons with `p_adjusted` set by Holm's correction across them (one table's family)."""
    names = list(comparisons)
    adjusted = holm([comparisons[n].p for n in names])
    return {n: dataclasses.replace(comparisons[n], p_adjusted=a) for n, a in zip(names, adjusted)}


@dataclass(frozen=True)
class Friedman:
    """Ranks of k methods over n images (1 = best), the Friedman test and the Nemenyi critical difference."""

    mean_ranks: dict[str, float]  # method -> mean rank over the images
    images: int
    statistic: float
    p: float
    critical_difference: float  # two methods whose mean ranks differ by more differ at level ALPHA

    def groups(self) -> list[tuple[str, ...]]:
        """Maximal runs of methods (in rank order) whose mean ranks lie within one critical difference: the bars
        of a critical-difference diagram, linking methods the test cannot tell apart."""
        ordered = sorted(self.mean_ranks, key=self.mean_ranks.get)
        runs = []
        for i, first in enumerate(ordered):
            run = tuple(m for m in ordered[i:]
                        if self.mean_ranks[m] - self.mean_ranks[first] <= self.critical_difference)
            if len(run) > 1 and not any(set(run) <= set(r) for r in runs):
                runs.append(run)
        return runs


def friedman(scores: Mapping[str, Mapping[str, float]]) -> Friedman | None:
    """`scores`: method -> image -> score (higher is better; nan or missing: a failed fit, ranked last on that
    image). Only images every method was planned on count. None with fewer than 2 methods or 2 images."""
    methods = sorted(scores)
    images = sorted(set.intersection(*(set(s) for s in scores.values()))) if scores else []
    if len(methods) < 2 or len(images) < 2:
        return None
    table = np.array([[scores[m][i] for m in methods] for i in images], dtype=float)
    table = np.where(np.isnan(table), -np.inf, table)
    ranks = scipy_stats.rankdata(-table, axis=1)  # 1 = best; ties share the mean rank
    n, k = table.shape
    mean_ranks = ranks.mean(axis=0)
    # Friedman's chi-square with the tie correction (as scipy.stats.friedmanchisquare).
    ties = sum(((np.unique(row, return_counts=True)[1] ** 3) - np.unique(row, return_counts=True)[1]).sum()
               for row in ranks)
    denominator = 1 - ties / (n * (k ** 3 - k))
    statistic = (12 * n / (k * (k + 1)) * ((mean_ranks - (k + 1) / 2) ** 2).sum()) / denominator \
        if denominator > 0 else 0.0
    p = float(scipy_stats.chi2.sf(statistic, k - 1)) if denominator > 0 else 1.0
    q_alpha = scipy_stats.studentized_range.ppf(1 - ALPHA, k, np.inf) / math.sqrt(2)
    return Friedman(dict(zip(methods, map(float, mean_ranks))), n, float(statistic), p,
                    float(q_alpha * math.sqrt(k * (k + 1) / (6 * n))))
