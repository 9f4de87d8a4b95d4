"""Named sizes of the generative suite: how much MNIST, how long each model trains, how many samples are scored."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .features import ClassifierSpec


@dataclass(frozen=True)
class GenerativePreset:
    name: str
    description: str
    train_count: int | None  # training images (a fixed random subset); None: all 60,000
    epochs: Mapping[str, int]  # per model, "*" for any model not named
    n_samples: int  # generated images scored per model (a multiple of 10: equal counts per class)
    n_real: int  # test images they are scored against
    classifier: ClassifierSpec
    max_seconds: float | None = None  # training-time budget per model, so models compare at equal time
    kid_subsets: int = 100
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # model config overrides

    def epochs_for(self, model: str) -> int:
        return self.epochs.get(model, self.epochs["*"])


GENERATIVE_PRESETS: dict[str, GenerativePreset] = {
    p.name: p
    for p in [
        GenerativePreset(
            "smoke", "tests and CI: 256 training images, one epoch, tiny nets, a quick classifier; seconds",
            train_count=256, epochs={"*": 1}, n_samples=200, n_real=500,
            classifier=ClassifierSpec(train_count=2000, epochs=2), kid_subsets=10,
            overrides={"fourier_net": {"width": 4, "depth": 2, "hidden": (64, 128)}},
        ),
        GenerativePreset(
            "standard", "10,000 training images, 150 s of training per model on 2 cores, 5,000 samples vs the test set",
            train_count=10000, epochs={"*": 50}, n_samples=5000, n_real=10000, classifier=ClassifierSpec(),
            max_seconds=150,
        ),
        GenerativePreset(
            "paper", "all of MNIST for the sources' epoch counts (FOKR 100, VAE/CVAE 10; Fourier net 100, not given)",
            train_count=None, epochs={"*": 100, "vae": 10, "cvae": 10}, n_samples=10000, n_real=10000,
            classifier=ClassifierSpec(),
        ),
    ]
}
