"""What one fit is (`FitRun`), and turning it into a record: build, seed, fit, score."""

from __future__ import annotations

import dataclasses
import functools
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .batched import BatchTrial, can_batch, fit_batch, time_batching
from .engine import FitConfig, FitOutcome, fit_image
from .hardware import matmul_peak
from .interpolation import INTERPOLATIONS, interpolate
from .protocol import make_split, training_grid
from .records import FitRecord, RecordLog, run_key
from .scoring import score
from fitbench import representations
from fitbench.datasets import ImageSample


@dataclass(frozen=True)
class FitRun:
    """One representation (or interpolation reference) fitted to one image under one protocol."""

    representation: str
    image: ImageSample = field(compare=False, repr=False)
    image_set: str
    protocol: str
    preset: str
    seed: int
    steps: int
    overrides: tuple[tuple[str, Any], ...] = ()  # config overrides, as sorted pairs so the run stays hashable
    device: str = "cpu"
    precision: str = "fp32"  # engine fast paths (FitConfig); precision changes results, so it is in the key
    compile: bool = False
    budget_seconds: float | None = None  # training-time budget (FitConfig.seconds); steps is then a cap
    budget_flops: float | None = None  # matmul-FLOP budget (FitConfig.flops)
    pixels_per_step: int | None = None  # random training-pixel subset per step (FitConfig.pixels_per_step)
    settings_from: str = ""  # where the overrides came from (a tuned-settings file), for the record
    precision_from: str = ""  # why --precision auto chose this precision ("" when the user named it)

    @property
    def is_reference(self) -> bool:
        return self.representation in INTERPOLATIONS

    @functools.cached_property
    def representation_config(self) -> representations.RepresentationConfig:
        return representations.make_config(self.representation, seed=self.seed, **dict(self.overrides))

    @property
    def config(self) -> dict[str, Any]:
        return {} if self.is_reference else dataclasses.asdict(self.representation_config)

    @property
    def size(self) -> int:
        return self.image.pixels.shape[0]

    @property
    def key(self) -> str:
        return run_key(
            representation=self.representation, image=self.image.name, image_set=self.image_set,
            protocol=self.protocol, preset=self.preset, seed=self.seed, size=self.size,
            steps=0 if self.is_reference else self.steps, config=self.config,
            # settings at their defaults stay out of the key, so adding a setting keeps earlier keys valid
            **{name: value for name, value in self.engine_settings.items() if value is not None},
        )

    @property
    def engine_settings(self) -> dict[str, Any]:
        """What besides the config changes the result: precision, budgets, pixel sampling (None: default)."""
        return {"precision": None if self.precision == "fp32" else self.precision,
                "budget_seconds": self.budget_seconds, "budget_flops": self.budget_flops,
                "pixels_per_step": self.pixels_per_step}

    @property
    def label(self) -> str:
        return f"{self.representation} on {self.image.name} (seed {self.seed})"

    @property
    def batch_group(self) -> tuple | None:
        """Runs with equal groups can be fitted as one batch: only the image and the seed may differ. A fit under a
        time budget is never batched: each one gets the whole budget on its own clock."""
        if self.is_reference or self.budget_seconds is not None or not can_batch(self.representation):
            return None
        return (self.representation, self.image_set, self.protocol, self.preset, self.steps, self.overrides,
                self.device, self.precision, self.compile, self.budget_seconds, self.budget_flops,
                self.pixels_per_step, self.image.pixels.shape)

    def fit_config(self) -> FitConfig:
        return FitConfig.for_representation(self.representation_config, self.steps, device=self.device, precision=self.precision,
                                            compile=self.compile, seconds=self.budget_seconds,
                                            flops=self.budget_flops, pixels_per_step=self.pixels_per_step)

    @property
    def training_grid(self) -> representations.TrainingGrid:
        """The pixels the fit trains on, which the settings that follow the image are derived from."""
        return training_grid(self.protocol, *self.image.pixels.shape[:2])

    def build(self) -> torch.nn.Module:
        torch.manual_seed(self.seed)
        return representations.build(self.representation, out_features=self.image.pixels.shape[2],
                                     training_grid=self.training_grid, **self.config)


def execute_fit(run: FitRun, on_step: Callable[[int, float], None] | None = None,
                fit: Callable[[FitRun, torch.nn.Module, Callable], FitOutcome] | None = None,
                ) -> tuple[FitRecord, np.ndarray | None]:
    """Fit (or interpolate) and score; an exception becomes a record with status "error", never a crash.

    `fit(run, model, on_step)` replaces the single fit (BatchedFits hands out outcomes of a batch this way).
    """
    record = FitRecord(
        representation=run.representation, kind="reference" if run.is_reference else "representation",
        image=run.image.name, image_set=run.image_set, protocol=run.protocol, preset=run.preset, seed=run.seed,
        steps=0 if run.is_reference else run.steps, size=run.size, params=0, lr=None, config={}, status="error",
        device=run.device, key=run.key, precision=run.precision, budget_seconds=run.budget_seconds,
        budget_flops=run.budget_flops, pixels_per_step=run.pixels_per_step,
        max_steps=0 if run.is_reference else run.steps, settings_from=run.settings_from,
        precision_from=run.precision_from,
    )
    pixels = run.image.pixels
    split = make_split(run.protocol, *pixels.shape[:2])
    try:
        if run.is_reference:
            reconstruction, outcome = interpolate(pixels, split, run.representation), None
        else:
            model = run.build()
            config = dataclasses.asdict(model.config)  # with the settings derived from the training grid
            record.params, record.lr, record.config = representations.count_parameters(model), config["lr"], config
            if fit is None:
                outcome = fit_image(model, pixels, split, run.fit_config(), on_step)
            else:
                outcome = fit(run, model, on_step)
            reconstruction = outcome.reconstruction
            record.seconds, record.curve, record.steps = outcome.seconds, outcome.curve, outcome.steps_done
            record.step_seconds, record.warmup_seconds = outcome.step_seconds, outcome.warmup_seconds
            record.gflops, record.batch, record.batch_seconds = outcome.gflops, outcome.batch, outcome.batch_seconds
            record.peak_fraction = outcome.gflops / matmul_peak(run.device, run.precision).gflops
        scores = score(pixels, reconstruction, split)
        record.psnr_train, record.psnr_test = scores.psnr_train, scores.psnr_test
        record.psnr_full, record.ssim_full = scores.psnr_full, scores.ssim_full
        record.status = outcome.status if outcome else "ok"
        return record, reconstruction
    except Exception as error:  # one failed run is recorded and the suite goes on
        record.error = f"{type(error).__name__}: {error}"
        record.curve = {"traceback": traceback.format_exc(limit=3).splitlines()[-3:]}
        return record, None


class BatchedFits:
    """An `execute` for `execute_pending` that fits each run's whole batch group at its first run.

    `execute_pending` still sees one run at a time and appends one record per run, so resume works as before:
    the group of a run is formed from the runs not yet finished in the log, fitted together (bench/batched.py),
    and the outcomes of the other members wait here until the executor reaches them.
    """

    def __init__(self, runs: Sequence[FitRun], log: RecordLog, max_batch: int = 32, measure: bool = False):
        self.runs, self.log, self.max_batch = list(runs), log, max_batch
        self.measure = measure  # --batch auto: batch a group only where a quick trial finds it faster
        self.waiting: dict[str, FitOutcome] = {}
        self.trials: dict[tuple, BatchTrial] = {}  # one trial per batch group

    def __call__(self, run: FitRun, on_step: Callable[[int, float], None]) -> tuple[FitRecord, np.ndarray | None]:
        group = run.batch_group
        if group is None:
            return execute_fit(run, on_step)
        return execute_fit(run, on_step, fit=self._outcome)

    def tasks(self, runs: Sequence[FitRun]) -> list[tuple["BatchedFits", list[FitRun]]]:
        """Each batch group's runs in tasks of at most `max_batch` (split as run here), for executors that ship
        runs elsewhere (bench/distributed.py)."""
        groups: dict[Any, list[FitRun]] = {}
        for run in runs:
            groups.setdefault(run.batch_group or run.key, []).append(run)
        batches = [group[start:start + self.max_batch] for group in groups.values()
                   for start in range(0, len(group), self.max_batch)]
        return [(BatchedFits(batch, self.log, self.max_batch, self.measure), batch) for batch in batches]

    def _outcome(self, run: FitRun, model: torch.nn.Module, on_step: Callable) -> FitOutcome:
        if run.key in self.waiting:
            return self.waiting.pop(run.key)
        split = make_split(run.protocol, *run.image.pixels.shape[:2])
        trial = self.trials.get(run.batch_group)
        if trial is None or trial.pays:
            done = self.log.finished_keys()
            members = [r for r in self.runs if r.batch_group == run.batch_group and r.key not in done
                       and r.key != run.key][: self.max_batch - 1]
            models = [model] + [r.build() for r in members]
            images = [run.image.pixels] + [r.image.pixels for r in members]
            if members and (not self.measure or self._batching_pays(run, models, images, split)):
                outcomes = fit_batch(models, images, split, run.fit_config(), on_step)
                self.waiting.update({r.key: o for r, o in zip([run, *members], outcomes)})
                return self.waiting.pop(run.key)
        return fit_image(model, run.image.pixels, split, run.fit_config(), on_step)

    def _batching_pays(self, run: FitRun, models: list, images: list, split) -> bool:
        if run.batch_group not in self.trials:
            trial = self.trials[run.batch_group] = time_batching(models, images, split, run.fit_config())
            print(f"batch auto: {run.representation} at {run.size}^2, {trial.describe()}", file=sys.stderr)
        return self.trials[run.batch_group].pays
