"""MNIST through torchvision, from the fitbench data root, as float tensors in [0, 1]."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from fitbench.datasets import DatasetError, resolve_data_root

from ..torchvision_compat import import_torchvision

NUM_CLASSES = 10
SIDE = 28


@dataclass(frozen=True)
class Digits:
    """Images (N, 1, 28, 28) float32 in [0, 1] and their labels (N,) int64."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int | None) -> "Digits":
        return self if count is None else Digits(self.images[:count], self.labels[:count])

    def shuffled_head(self, count: int | None, seed: int) -> "Digits":
        """`count` images drawn without replacement with a fixed seed (a representative subset, all classes)."""
        if count is None or count >= len(self):
            return self
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:count]
        return Digits(self.images[order], self.labels[order])


@dataclass(frozen=True)
class TrainingSplits:
    """MNIST train cut by one fixed permutation into parts that do not overlap where it matters.

    The permutation's first `GENERATOR_POOL` images are where generators train (the standard preset uses exactly
    those) and where the `real` reference row draws from; the next `VALIDATION_POOL` are held out for choosing
    settings; the classifier trains on the rest. So no scored row's "real" images were seen by the classifier
    (their features would be those of memorised images), and validation images were seen by no model. A preset
    that trains on more (the paper preset: all 60,000) gives its generators the other parts too.
    """

    generators: Digits  # what the models train on
    real_pool: Digits  # training images the `real` row draws from: generator images the classifier never saw
    validation: Digits  # never seen by the classifier; `held_out`: nor by the generators
    classifier: Digits  # what the feature classifier trains on
    held_out: bool  # the generators saw no validation image


GENERATOR_POOL = 10000
VALIDATION_POOL = 10000


def split_training(train: Digits, generator_count: int | None, seed: int = 0) -> TrainingSplits:
    """The splits of `train` (see TrainingSplits); `generator_count` None: every image."""
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    pool = min(GENERATOR_POOL, len(train) // 3)  # thirds for the small synthetic sets of the tests
    held = min(VALIDATION_POOL, len(train) // 3)
    count = len(train) if generator_count is None else min(generator_count, len(train))

    def part(indices: Tensor) -> Digits:
        return Digits(train.images[indices], train.labels[indices])

    return TrainingSplits(part(order[:count]), part(order[:min(count, pool)]), part(order[pool:pool + held]),
                          part(order[pool + held:]), held_out=count <= pool)


def load_mnist(train: bool, data_root: str | os.PathLike | None = None, allow_download: bool = True) -> Digits:
    """MNIST train or test from `<data root>/MNIST/raw` (torchvision's layout), downloaded there when missing."""
    root = resolve_data_root(data_root)
    datasets = import_torchvision().datasets
    try:
        mnist = datasets.MNIST(root=str(root), train=train, download=allow_download)
    except (RuntimeError, OSError) as error:  # torchvision reports both "not found" and failed downloads this way
        raise DatasetError(
            f"MNIST is not in {root / 'MNIST' / 'raw'} and could not be downloaded ({str(error).splitlines()[0]}); "
            "put train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            "(or their .gz) there, or pass --data-root"
        ) from None
    return Digits(mnist.data.unsqueeze(1).float() / 255, mnist.targets.long())
