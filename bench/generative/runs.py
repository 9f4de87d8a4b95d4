"""What one generative run is (a model trained and scored, or a reference row), and turning it into a record."""

from __future__ import annotations

import dataclasses
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..records import run_key
from .budget import Budget
from .data import NUM_CLASSES, Digits
from .features import FEATURE_LAYER, ClassifierSpec, FeatureNetwork
from .models import build_model, get_model_entry, make_model_config
from .scores import score_samples
from .training import save_checkpoint, steps_per_epoch, train

# Reference rows, so each model's numbers can be read: how close real data gets, and two trivial generators.
REFERENCES = ("real", "class_means", "noise")


@dataclass(frozen=True)
class GenerativeRun:
    model: str  # a registered model or a name from REFERENCES
    preset: str
    form: str  # models: "as written" or "best in family" (+ "--set" when the command changed its settings)
    budget: Budget  # the same for every model of a preset
    train_count: int
    n_samples: int  # generated images, and real images they are scored against
    classifier: ClassifierSpec  # how the feature network was trained
    scored_on: str = "test"  # "test" or "validation" (a held-out part of MNIST train, for choosing settings)
    device: str = "cpu"
    threads: int = 1  # torch's CPU threads: what a CPU-time budget buys depends on it
    kid_subsets: int = 100
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def is_reference(self) -> bool:
        return self.model in REFERENCES

    @property
    def config(self) -> dict[str, Any]:
        return {} if self.is_reference else dataclasses.asdict(make_model_config(self.model, **dict(self.overrides)))

    @property
    def steps(self) -> int:  # for the progress bar; unknown in advance under a time budget
        if self.is_reference or self.budget.epochs is None:
            return 0
        return self.budget.epochs * steps_per_epoch(self.train_count, self.config["batch_size"])

    @property
    def key(self) -> str:
        identity = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return run_key(suite="generative", **identity, config=self.config)

    @property
    def label(self) -> str:
        return self.model if self.is_reference else f"{self.model} ({self.budget})"


@dataclass
class GenerativeRecord:
    """One row of metrics.csv: a model (or reference) and the scores of its samples."""

    model: str
    kind: str  # "model" or "reference"
    preset: str
    status: str  # ok | error
    form: str = ""  # models: "as written" or "best in family"
    source: str = ""  # where the model's settings come from
    budget: str = ""  # what every model of the preset was given, e.g. cpu_seconds=300
    epochs: float = 0.0  # what this one used: epochs (fractional under a time budget), steps, both clocks
    steps: int = 0
    train_seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process's CPU time, all threads
    device: str = "cpu"
    threads: int = 1  # torch's CPU threads: CPU seconds buy less with more threads (they wait for each other)
    scored_on: str = "test"
    fd: float | None = None
    kid: float | None = None
    kid_std: float | None = None
    precision: float | None = None
    recall: float | None = None
    class_acc: float | None = None
    per_class_acc: list[float] | None = None
    n_samples: int = 0
    n_real: int = 0
    extractor: str = ""
    layer: str = FEATURE_LAYER
    classifier_acc: float | None = None  # the feature classifier's accuracy on the MNIST test set
    params: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    logs: dict[str, float] = field(default_factory=dict)
    samples: str | None = None  # PNG paths relative to the suite folder
    interpolation: str | None = None
    checkpoint: str | None = None
    error: str | None = None
    key: str = ""
    created: float = field(default_factory=time.time)

    @property
    def seconds(self) -> float:  # what the progress line prints
        return self.train_seconds


@dataclass
class Artifacts:
    """What a run leaves besides its record: samples to show and, for trained models, the model."""

    grid: Tensor | None = None  # (rows * 10, 1, 28, 28): ten per class for conditional generators
    interpolation: Tensor | None = None
    model: torch.nn.Module | None = None


@dataclass
class ScoringContext:
    """Everything a run is scored against, prepared once per suite invocation."""

    train: Digits  # what the generators train on
    real_pool: Digits  # what the `real` row draws from: training images the classifier never saw
    reference: Digits  # the real images scored against: MNIST test, or the validation split
    reference_features: Tensor
    features: FeatureNetwork


def requested_labels(count: int) -> Tensor:
    """0, 1, .., 9, 0, 1, ..: equal counts per class (count is a multiple of 10)."""
    return torch.arange(count) % NUM_CLASSES


def reference_samples(name: str, context: ScoringContext, count: int) -> tuple[Tensor, Tensor | None]:
    """Images of a reference row and the classes they stand for (None where they stand for none)."""
    generator = torch.Generator().manual_seed(0)
    if name == "real":  # training images against the test set: the best any generator can hope for
        pool = context.real_pool
        pick = torch.randperm(len(pool), generator=generator)[:count]
        return pool.images[pick], pool.labels[pick]
    if name == "class_means":
        train, labels = context.train, requested_labels(count)
        means = torch.stack([train.images[train.labels == c].mean(0) for c in range(NUM_CLASSES)])
        return means[labels], labels
    return torch.rand(count, 1, 28, 28, generator=generator), None  # noise


def train_and_sample(run: GenerativeRun, context: ScoringContext, record: GenerativeRecord,
                     on_step: Callable[[int, float], None] | None) -> tuple[Tensor, Tensor | None, Artifacts]:
    """Train the run's model on its device within its budget, fill in what it used, and draw its samples."""
    config = make_model_config(run.model, **dict(run.overrides))
    torch.manual_seed(config.seed)
    model = build_model(run.model, config)
    record.params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    outcome = train(model, context.train, run.budget, on_step, run.device)
    record.epochs, record.steps = outcome.epochs, outcome.steps
    record.train_seconds, record.cpu_seconds = outcome.seconds, outcome.cpu_seconds
    record.logs = {"final_loss": outcome.final_loss, **outcome.logs}
    labels = requested_labels(run.n_samples)
    images = model.sample(labels).cpu()
    strips = torch.cat([model.interpolate(c, 10) for c in range(NUM_CLASSES)]).cpu()
    return images, labels if model.conditional else None, Artifacts(images[:100], strips, model)


def execute_generative(run: GenerativeRun, on_step: Callable[[int, float], None] | None = None, *,
                       context: ScoringContext) -> tuple[GenerativeRecord, Artifacts]:
    """Train (unless a reference) and score; an exception becomes a record with status "error"."""
    record = GenerativeRecord(run.model, "reference", run.preset, "error", device=run.device,
                              threads=run.threads, scored_on=run.scored_on,
                              extractor=context.features.description, classifier_acc=context.features.test_accuracy,
                              key=run.key, config=run.config)
    if not run.is_reference:
        entry = get_model_entry(run.model)
        record.kind, record.form, record.source, record.budget = "model", run.form, entry.source, str(run.budget)
    try:
        if run.is_reference:
            images, labels = reference_samples(run.model, context, run.n_samples)
            artifacts = Artifacts(grid=images[:100])
        else:
            images, labels, artifacts = train_and_sample(run, context, record, on_step)
        fake = context.features.extractor(images)
        predicted = context.features.predict(images) if labels is not None else None
        scores = score_samples(context.reference_features, fake, predicted, labels, run.kid_subsets)
        for name, value in dataclasses.asdict(scores).items():
            setattr(record, name, value)
        record.status = "ok"
        return record, artifacts
    except Exception as error:  # one failed run is recorded and the suite goes on
        record.error = f"{type(error).__name__}: {error}"
        record.logs = {"traceback": traceback.format_exc(limit=3).splitlines()[-3:]}
        return record, Artifacts()


def keep_artifacts(folder: Path) -> Callable[[GenerativeRun, GenerativeRecord, Artifacts], GenerativeRecord]:
    """The executor's on_finished: write the sample grid, interpolation strips and checkpoint next to the records."""
    from fitbench.torchvision_compat import import_torchvision

    from ..figures import save_png

    make_grid = import_torchvision().utils.make_grid

    def save_images(images: Tensor, relative: Path) -> str:
        grid = make_grid(images, nrow=10, padding=2, pad_value=1.0)[:1]  # make_grid returns 3 equal channels
        save_png(grid.permute(1, 2, 0).numpy(), folder / relative)
        return str(relative)

    def on_finished(run: GenerativeRun, record: GenerativeRecord, artifacts: Artifacts) -> GenerativeRecord:
        if artifacts.grid is not None:
            record.samples = save_images(artifacts.grid, Path("samples") / f"{run.model}-{run.key}.png")
        if artifacts.interpolation is not None:
            record.interpolation = save_images(artifacts.interpolation,
                                               Path("interpolation") / f"{run.model}-{run.key}.png")
        if artifacts.model is not None:
            relative = Path("checkpoints") / f"{run.model}-{run.key}.pt"
            save_checkpoint(artifacts.model, run.model, folder / relative)
            record.checkpoint = str(relative)
        return record

    return on_finished
