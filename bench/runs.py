"""What one fit is (`FitRun`), and turning it into a record: build, seed, fit, score."""

from __future__ import annotations

import dataclasses
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from .engine import FitConfig, FitOutcome, fit_image
from .interpolation import INTERPOLATIONS, interpolate
from .protocol import make_split
from .records import FitRecord, run_key
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

    @property
    def is_reference(self) -> bool:
        return self.representation in INTERPOLATIONS

    @property
    def config(self) -> dict[str, Any]:
        if self.is_reference:
            return {}
        config = representations.make_config(self.representation, seed=self.seed, **dict(self.overrides))
        return dataclasses.asdict(config)

    @property
    def size(self) -> int:
        return self.image.pixels.shape[0]

    @property
    def key(self) -> str:
        return run_key(
            representation=self.representation, image=self.image.name, image_set=self.image_set,
            protocol=self.protocol, preset=self.preset, seed=self.seed, size=self.size,
            steps=0 if self.is_reference else self.steps, config=self.config,
        )

    @property
    def label(self) -> str:
        return f"{self.representation} on {self.image.name} (seed {self.seed})"


def execute_fit(run: FitRun, on_step: Callable[[int, float], None] | None = None) -> tuple[FitRecord, np.ndarray | None]:
    """Fit (or interpolate) and score; an exception becomes a record with status "error", never a crash."""
    record = FitRecord(
        representation=run.representation, kind="reference" if run.is_reference else "representation",
        image=run.image.name, image_set=run.image_set, protocol=run.protocol, preset=run.preset, seed=run.seed,
        steps=0 if run.is_reference else run.steps, size=run.size, params=0, lr=None, config={}, status="error",
        device=run.device, key=run.key,
    )
    pixels = run.image.pixels
    split = make_split(run.protocol, *pixels.shape[:2])
    try:
        if run.is_reference:
            reconstruction, outcome = interpolate(pixels, split, run.representation), None
        else:
            config = run.config
            torch.manual_seed(run.seed)
            model = representations.build(run.representation, out_features=pixels.shape[2], **config)
            record.params, record.lr, record.config = representations.count_parameters(model), config["lr"], config
            outcome: FitOutcome = fit_image(
                model, pixels, split, FitConfig(steps=run.steps, lr=config["lr"], device=run.device), on_step
            )
            reconstruction = outcome.reconstruction
            record.seconds, record.curve, record.steps = outcome.seconds, outcome.curve, outcome.steps_done
        scores = score(pixels, reconstruction, split)
        record.psnr_train, record.psnr_test = scores.psnr_train, scores.psnr_test
        record.psnr_full, record.ssim_full = scores.psnr_full, scores.ssim_full
        record.status = outcome.status if outcome else "ok"
        return record, reconstruction
    except Exception as error:  # one failed run is recorded and the suite goes on
        record.error = f"{type(error).__name__}: {error}"
        record.curve = {"traceback": traceback.format_exc(limit=3).splitlines()[-3:]}
        return record, None
