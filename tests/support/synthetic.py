"""Synthetic handwriting-like digits: the tests run the generative code on them where MNIST is not available.

Each class is a fixed pen stroke (a polyline roughly shaped like the digit); every image draws it with its own
rotation, scale, slant, position and stroke width, antialiased, in a 20-pixel box of a 28 x 28 image as MNIST
does. Like MNIST, images of one class differ from each other, so the class mean is a blur that looks like no
single image and a sample of real images is far nearer the data than the ten class means are.
"""

from __future__ import annotations

import math

import torch

from fitbench.generative.data import SIDE, Digits

# Polylines in a unit box (x right, y down), one per digit.
STROKES = [
    [(0.5 + 0.3 * math.cos(2 * math.pi * t / 12), 0.5 + 0.45 * math.sin(2 * math.pi * t / 12)) for t in range(13)],
    [(0.35, 0.2), (0.5, 0.05), (0.5, 0.95)],
    [(0.2, 0.3), (0.35, 0.08), (0.65, 0.08), (0.8, 0.3), (0.7, 0.5), (0.2, 0.95), (0.85, 0.95)],
    [(0.2, 0.1), (0.75, 0.1), (0.45, 0.45), (0.8, 0.65), (0.7, 0.9), (0.2, 0.92)],
    [(0.65, 0.95), (0.65, 0.05), (0.15, 0.65), (0.85, 0.65)],
    [(0.8, 0.08), (0.25, 0.08), (0.22, 0.45), (0.6, 0.42), (0.8, 0.65), (0.6, 0.92), (0.2, 0.9)],
    [(0.7, 0.05), (0.3, 0.45), (0.22, 0.75), (0.45, 0.95), (0.72, 0.8), (0.65, 0.55), (0.3, 0.6)],
    [(0.15, 0.08), (0.85, 0.08), (0.4, 0.95)],
    [(0.5, 0.5), (0.25, 0.3), (0.5, 0.05), (0.75, 0.3), (0.5, 0.5), (0.2, 0.75), (0.5, 0.95), (0.8, 0.75), (0.5, 0.5)],
    [(0.7, 0.4), (0.35, 0.45), (0.28, 0.2), (0.5, 0.05), (0.72, 0.2), (0.7, 0.4), (0.6, 0.95)],
]


def _segments() -> torch.Tensor:
    """(10, S, 2, 2): each class's stroke as S segments (start, end), padded by repeating the last segment."""
    count = max(len(points) for points in STROKES) - 1
    rows = []
    for points in STROKES:
        pairs = [(points[i], points[i + 1]) for i in range(len(points) - 1)]
        rows.append(pairs + [pairs[-1]] * (count - len(pairs)))
    return torch.tensor(rows)


def synthetic_digits(count: int, seed: int = 0) -> Digits:
    """`count` images (labels 0, 1, .., 9, 0, ..), each class's stroke drawn with its own random pose and pen."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, generator=generator)

    labels = torch.arange(count) % 10
    angle, scale, slant, width = uniform(-0.3, 0.3), uniform(0.8, 1.1), uniform(-0.3, 0.3), uniform(0.9, 1.8)
    shift = torch.stack([uniform(-2.5, 2.5), uniform(-2.5, 2.5)], 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Unit box -> pixels: centre, slant (x += slant * y), rotate, scale to a 20-pixel box, shift.
    transform = torch.stack([torch.stack([cos, cos * slant - sin], 1), torch.stack([sin, sin * slant + cos], 1)], 1)
    transform = transform * (20 * scale)[:, None, None]
    segments = (_segments()[labels] - 0.5) @ transform[:, None].transpose(-1, -2) + (SIDE - 1) / 2
    segments = segments + shift[:, None, None]  # (N, S, 2 ends, 2 coordinates) in pixels
    axis = torch.arange(SIDE, dtype=torch.float32)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    pixels = torch.stack([x.flatten(), y.flatten()], 1)  # (784, 2)
    distance = torch.full((count, SIDE * SIDE), float("inf"))
    for start, end in zip(segments[:, :, 0].unbind(1), segments[:, :, 1].unbind(1)):  # (N, 2) each
        along = (end - start)[:, None]
        offset = pixels - start[:, None]  # (N, 784, 2)
        t = ((offset * along).sum(-1) / along.pow(2).sum(-1).clamp(min=1e-6)).clamp(0, 1)
        distance = torch.minimum(distance, (offset - t[..., None] * along).norm(dim=-1))  # to the stroke so far
    images = (width[:, None] - distance + 0.5).clamp(0, 1)  # antialiased pen of the given half-width
    return Digits(images.view(count, 1, SIDE, SIDE), labels)
