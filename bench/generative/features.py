"""The feature network of the FID-like scores: a small MNIST CNN classifier, trained once and cached with a checksum.

Scores depend on the extractor and its layer (REFERENCE.md §4), so both are named in every output row:
features are the 128 ReLU activations of the penultimate layer, `FEATURE_LAYER`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .data import Digits, NUM_CLASSES

FEATURE_LAYER = "fc1"  # 128-d, after ReLU
BATCH = 1000


class DigitClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 5, padding=2), nn.Conv2d(16, 32, 5, padding=2)
        self.fc1, self.fc2 = nn.Linear(32 * 7 * 7, 128), nn.Linear(128, NUM_CLASSES)

    def features(self, images: Tensor) -> Tensor:
        h = F.max_pool2d(F.relu(self.conv1(images)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        return F.relu(self.fc1(h.flatten(1)))

    def forward(self, images: Tensor) -> Tensor:
        return self.fc2(self.features(images))


class FeatureExtractor(nn.Module):
    """Images (N, 1, 28, 28) in [0, 1] -> the classifier's `FEATURE_LAYER` activations; usable as torchmetrics' `feature`."""

    num_features = 128

    def __init__(self, classifier: DigitClassifier):
        super().__init__()
        self.classifier = classifier

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        return torch.cat([self.classifier.features(chunk) for chunk in images.split(BATCH)])


@dataclass(frozen=True)
class ClassifierSpec:
    """How the feature classifier is trained; its hash names the cached file."""

    train_count: int | None = None  # None: all 60,000 training images
    epochs: int = 6
    lr: float = 1e-3
    lr_decay: float = 0.7  # per epoch; the last epochs' smaller steps take test accuracy past 99%
    batch_size: int = 128
    seed: int = 0

    def tag(self, train: Digits) -> str:
        """Names the cached file: the spec and a fingerprint of the images it learns from (so other data never
        picks up a classifier trained on MNIST, or the reverse)."""
        fingerprint = hashlib.sha1((train.images * 255).round().to(torch.uint8).numpy().tobytes()).hexdigest()
        text = json.dumps({**asdict(self), "data": fingerprint}, sort_keys=True)
        return "mnist-cnn-" + hashlib.sha1(text.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class FeatureNetwork:
    extractor: FeatureExtractor
    spec: ClassifierSpec
    test_accuracy: float
    path: Path  # the cached weights; the file's stem is the classifier's tag

    @property
    def description(self) -> str:
        trained_on = "all" if self.spec.train_count is None else str(self.spec.train_count)
        return (f"{self.path.stem} (CNN, {trained_on} train images, {self.spec.epochs} epochs, "
                f"test accuracy {self.test_accuracy:.2%}), layer {FEATURE_LAYER}")

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        classifier = self.extractor.classifier
        return torch.cat([classifier(chunk).argmax(1) for chunk in images.split(BATCH)])


class ChecksumError(ValueError):
    pass


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_or_train(spec: ClassifierSpec, cache: Path, train: Digits, test: Digits) -> FeatureNetwork:
    """The cached classifier `cache/<tag>.pt` if its sha256 matches `<tag>.json`; else train it and cache it."""
    tag = spec.tag(train)
    weights, info = cache / f"{tag}.pt", cache / f"{tag}.json"
    classifier = DigitClassifier()
    if weights.exists() and info.exists():
        meta = json.loads(info.read_text())
        if sha256_of(weights) != meta["sha256"]:
            raise ChecksumError(f"{weights} does not match the sha256 in {info}; delete both files to retrain it")
        classifier.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return FeatureNetwork(FeatureExtractor(classifier.eval()), spec, meta["test_accuracy"], weights)
    print(f"training the feature classifier {tag} (cached in {cache})", file=sys.stderr)
    fit_classifier(classifier, train.shuffled_head(spec.train_count, spec.seed), spec)
    accuracy = float((FeatureNetwork(FeatureExtractor(classifier), spec, 0, weights).predict(test.images)
                      == test.labels).float().mean())
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(classifier.state_dict(), weights)
    info.write_text(json.dumps({"sha256": sha256_of(weights), "test_accuracy": accuracy, "layer": FEATURE_LAYER,
                                "spec": asdict(spec)}, indent=1))
    return FeatureNetwork(FeatureExtractor(classifier), spec, accuracy, weights)


def fit_classifier(classifier: DigitClassifier, data: Digits, spec: ClassifierSpec) -> None:
    torch.manual_seed(spec.seed)
    optimiser = torch.optim.Adam(classifier.parameters(), lr=spec.lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, spec.lr_decay)
    classifier.train()
    for _ in tqdm(range(spec.epochs), desc="  classifier epochs", leave=False, file=sys.stderr, disable=None):
        for index in torch.randperm(len(data)).split(spec.batch_size):
            loss = F.cross_entropy(classifier(data.images[index]), data.labels[index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        schedule.step()
    classifier.eval()
