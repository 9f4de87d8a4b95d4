"""The feature network of the FID-like scores: a small MNIST CNN classifier, trained once and cached with a checksum.

Scores depend on the extractor and its layer (a small MNIST classifier stands in for Inception, as in TF-GAN's
`mnist_frechet_distance`; docs/generative.md, Scores), so both are named in every output row:
features are the 128 ReLU activations of the penultimate layer, `FEATURE_LAYER`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..files import write_atomic
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
    """How the feature classifier is trained; with the data and the code that trains it, it names the cache."""

    train_count: int | None = None  # None: all of the classifier's split of MNIST train (data.TrainingSplits)
    epochs: int = 6
    lr: float = 1e-3
    lr_decay: float = 0.7  # per epoch; the last epochs' smaller steps take test accuracy past 99%
    batch_size: int = 128
    seed: int = 0


def fingerprint(digits: Digits) -> str:
    return hashlib.sha1((digits.images * 255).round().to(torch.uint8).numpy().tobytes()
                        + digits.labels.numpy().tobytes()).hexdigest()


def cache_identity(spec: ClassifierSpec, train: Digits, test: Digits) -> dict:
    """Everything that produced a cached classifier: its spec, the images it learnt from and was tested on, the
    code of its architecture and training loop, and torch's version. A cache is used only if all of it matches."""
    return {"spec": asdict(spec), "train": fingerprint(train), "test": fingerprint(test), "layer": FEATURE_LAYER,
            "code": CODE_VERSION, "torch": torch.__version__}


@dataclass(frozen=True)
class FeatureNetwork:
    extractor: FeatureExtractor
    spec: ClassifierSpec
    test_accuracy: float  # on the MNIST test set (the images every model is scored against)
    path: Path  # the cached weights; the file's stem is the classifier's tag

    @property
    def description(self) -> str:
        trained_on = "all" if self.spec.train_count is None else str(self.spec.train_count)
        return (f"{self.path.stem} (CNN, {trained_on} classifier-split train images, {self.spec.epochs} epochs, "
                f"test accuracy {self.test_accuracy:.2%}), layer {FEATURE_LAYER}")

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        classifier = self.extractor.classifier
        return torch.cat([classifier(chunk).argmax(1) for chunk in images.split(BATCH)])


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_cache(weights: Path, info: Path, identity: dict) -> tuple[dict, float] | None:
    """The cached state dict and test accuracy, or None (saying why on stderr) when the cache cannot be used."""
    if not info.exists() and not weights.exists():
        return None
    try:
        meta = json.loads(info.read_text())
        if meta.get("identity") != identity:
            problem = "was made by other settings, data or code"
        elif sha256_of(weights.read_bytes()) != meta.get("sha256"):
            problem = f"does not match the sha256 of {weights.name}"
        else:
            return torch.load(weights, map_location="cpu", weights_only=True), float(meta["test_accuracy"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError) as error:
        problem = f"cannot be read ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
    print(f"feature classifier cache {info} {problem}; retraining it and overwriting {info.name} and {weights.name}",
          file=sys.stderr)
    return None


def load_or_train(spec: ClassifierSpec, cache: Path, train: Digits, test: Digits) -> FeatureNetwork:
    """The cached classifier `cache/<tag>.pt` if `<tag>.json` holds its identity and sha256; else train and cache it.

    A cache that does not match (a half-written or edited file, other data or code) is retrained and replaced;
    files are written to a temporary name and renamed, the weights before the JSON that vouches for them.
    """
    train = train.shuffled_head(spec.train_count, spec.seed)
    identity = cache_identity(spec, train, test)
    tag = "mnist-cnn-" + hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    weights, info = cache / f"{tag}.pt", cache / f"{tag}.json"
    torch.manual_seed(spec.seed)  # before construction: the initial weights come from this seed
    classifier = DigitClassifier()
    if cached := read_cache(weights, info, identity):
        state, accuracy = cached
        classifier.load_state_dict(state)
        return FeatureNetwork(FeatureExtractor(classifier.eval()), spec, accuracy, weights)
    print(f"training the feature classifier {tag} (cached in {cache})", file=sys.stderr)
    fit_classifier(classifier, train, spec)
    network = FeatureNetwork(FeatureExtractor(classifier), spec, 0.0, weights)
    accuracy = float((network.predict(test.images) == test.labels).float().mean())
    buffer = io.BytesIO()
    torch.save(classifier.state_dict(), buffer)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        write_atomic(weights, buffer.getvalue())
        meta = {"identity": identity, "sha256": sha256_of(buffer.getvalue()), "test_accuracy": accuracy}
        write_atomic(info, json.dumps(meta, indent=1).encode())
    except OSError as error:
        raise ValueError(f"cannot write the feature classifier cache {cache} ({error.strerror}); "
                         "pass --classifier-cache DIR with a writable folder") from None
    return dataclasses.replace(network, test_accuracy=accuracy)


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


# The classifier's architecture and training loop as written when this module was imported.
CODE_VERSION = hashlib.sha1((inspect.getsource(DigitClassifier) + inspect.getsource(fit_classifier)).encode()).hexdigest()
