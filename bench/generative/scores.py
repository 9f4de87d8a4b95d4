"""Sample-quality scores on classifier features: Fréchet distance, KID, precision/recall, class accuracy."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def frechet_distance(real: Tensor, fake: Tensor) -> float:
    """‖μ_r - μ_f‖² + tr(C_r + C_f - 2 (C_r C_f)^½) of Gaussians fitted to two feature sets (N, D), in float64.

    tr((C_r C_f)^½) is the sum of the square roots of the eigenvalues of C_r C_f, which are real and
    non-negative for covariance matrices (tiny negative or complex parts are round-off).
    """
    real, fake = real.double(), fake.double()
    mean_r, mean_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = torch.cov(real.T), torch.cov(fake.T)
    root_trace = torch.linalg.eigvals(cov_r @ cov_f).real.clamp(min=0).sqrt().sum()
    return float((mean_r - mean_f).pow(2).sum() + cov_r.trace() + cov_f.trace() - 2 * root_trace)


def polynomial_mmd2(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD² with the kernel k(a, b) = (a·b / D + 1)³ (KID's, Bińkowski et al. 2018)."""
    d, m, n = x.shape[1], len(x), len(y)
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    return ((k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1)) + (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
            - 2 * k_xy.mean())


def kernel_inception_distance(real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID: mean and std of the MMD² over `subsets` random subsets of `subset_size` from each set."""
    real, fake = real.double(), fake.double()
    size = min(subset_size, len(real), len(fake))
    generator = torch.Generator().manual_seed(seed)
    values = torch.stack([
        polynomial_mmd2(real[torch.randperm(len(real), generator=generator)[:size]],
                        fake[torch.randperm(len(fake), generator=generator)[:size]])
        for _ in range(subsets)
    ])
    return float(values.mean()), float(values.std(unbiased=False))


def kth_neighbour_radius(points: Tensor, k: int, chunk: int = 2048) -> Tensor:
    """Distance from each point to its k-th nearest other point (rows in chunks: 10,000² distances are 400 MB)."""
    # k + 1: the point itself is at distance 0
    return torch.cat([torch.cdist(part, points).kthvalue(k + 1, dim=1).values for part in points.split(chunk)])


def manifold_coverage(manifold: Tensor, radii: Tensor, queries: Tensor, chunk: int = 2048) -> float:
    """Fraction of `queries` inside at least one ball (centre from `manifold`, radius from `radii`)."""
    inside = [(torch.cdist(q, manifold) <= radii).any(1) for q in queries.split(chunk)]
    return float(torch.cat(inside).float().mean())


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019: precision = fakes on the real k-NN manifold, recall = reals on the fake one.

    The k-NN radii shrink as a set grows, so the two sets must be equally large: with more real than generated
    points every precision falls and every recall rises.
    """
    if len(real) != len(fake):
        raise ValueError(f"precision/recall need as many generated as real points, got {len(fake)} and {len(real)}")
    real, fake = real.float(), fake.float()
    precision = manifold_coverage(real, kth_neighbour_radius(real, k), fake)
    recall = manifold_coverage(fake, kth_neighbour_radius(fake, k), real)
    return precision, recall


@dataclass(frozen=True)
class SampleScores:
    fd: float
    kid: float
    kid_std: float
    precision: float
    recall: float
    class_acc: float | None  # conditional models only: the classifier agrees with the requested class
    per_class_acc: list[float] | None
    n_samples: int
    n_real: int


def score_samples(real: Tensor, fake: Tensor, predicted: Tensor | None = None, requested: Tensor | None = None,
                  kid_subsets: int = 100, k: int = 3) -> SampleScores:
    """Every score of one set of generated features against the real test features."""
    kid, kid_std = kernel_inception_distance(real, fake, kid_subsets)
    precision, recall = precision_recall(real, fake, k)
    class_acc = per_class = None
    if predicted is not None and requested is not None:
        hits = (predicted == requested).float()
        class_acc = float(hits.mean())
        per_class = [float(hits[requested == c].mean()) if (requested == c).any() else float("nan")
                     for c in range(int(requested.max()) + 1)]
    return SampleScores(frechet_distance(real, fake), kid, kid_std, precision, recall, class_acc, per_class,
                        len(fake), len(real))

