"""Named sizes of the generative suite: how much MNIST, each model's training budget, how many samples are scored.

Every model of a preset trains for the same budget (budget.py); each record states what it used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..presets import PresetBase
from .budget import Budget
from .features import ClassifierSpec


@dataclass(frozen=True)
class GenerativePreset(PresetBase):
    train_count: int | None  # generator training images (data.TrainingSplits); None: all 60,000
    budget: Budget  # the same for every model
    n_samples: int  # generated images scored per model and real images they are scored against (a multiple of 10)
    classifier: ClassifierSpec
    kid_subsets: int = 100
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # model config overrides


# The smoke preset's small Fourier nets, for both of its layers.
SMOKE_FOURIER = {"width": 4, "depth": 2, "hidden": (64, 128)}

GENERATIVE_PRESETS: dict[str, GenerativePreset] = {
    p.name: p
    for p in [
        GenerativePreset(
            "smoke", "tests and CI: 256 training images, one epoch, tiny nets, a quick classifier; seconds",
            train_count=256, budget=Budget("epochs", 1), n_samples=200,
            classifier=ClassifierSpec(train_count=2000, epochs=2), kid_subsets=10,
            overrides={"fourier_net": SMOKE_FOURIER, "fourier_net_best": SMOKE_FOURIER},
        ),
        # Epochs, not seconds: on a shared machine a time budget buys each model what the other processes leave
        # it, so two runs of one table would not get equal budgets; five epochs keep the table within about an
        # hour on 2 busy cores (docs/generative.md).
        GenerativePreset(
            "standard", "10,000 training images, 5 epochs per model, 10,000 samples vs the 10,000 test images",
            train_count=10000, budget=Budget("epochs", 5), n_samples=10000, classifier=ClassifierSpec(),
        ),
        GenerativePreset(
            "paper", "all of MNIST, 100 epochs for every model (FOKR's source: 100-500; the VAE's: 10), "
            "10,000 samples vs the test set; GPU-scale",
            train_count=None, budget=Budget("epochs", 100), n_samples=10000, classifier=ClassifierSpec(),
        ),
    ]
}
