"""One training loop and one checkpoint format for every generative model."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .data import Digits
from .models import GenerativeModel, build_model, make_model_config

StepCallback = Callable[[int, float], None]


@dataclass
class TrainingOutcome:
    epochs: float  # completed, fractional when a time budget stopped training mid-epoch
    steps: int
    seconds: float  # optimisation only, so models compare at equal training time
    final_loss: float
    logs: dict[str, float]  # the last step's loss terms, plus anything the model reports after training


def train(model: GenerativeModel, data: Digits, epochs: int, on_step: StepCallback | None = None,
          max_seconds: float | None = None) -> TrainingOutcome:
    """Adam over shuffled minibatches for `epochs` epochs or until `max_seconds`, with the model's own lr and batch."""
    config = model.config
    torch.manual_seed(config.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    model.train()
    step, loss, logs, start = 0, torch.tensor(float("nan")), {}, time.perf_counter()
    deadline = start + max_seconds if max_seconds else float("inf")  # equal training time across models
    batches = (index for _ in range(epochs) for index in torch.randperm(len(data)).split(config.batch_size))
    for index in batches:
        loss, logs = model.loss(data.images[index], data.labels[index], index)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        if on_step:
            on_step(step, loss.item())
        if time.perf_counter() > deadline:
            break
    seconds = time.perf_counter() - start
    model.eval()
    logs = {**logs, **model.after_training()}
    return TrainingOutcome(step / steps_per_epoch(len(data), config.batch_size), step, seconds, loss.item(), logs)


def steps_per_epoch(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def save_checkpoint(model: GenerativeModel, name: str, path: Path) -> None:
    """State dict plus the model's name and config as JSON: loadable with weights_only=True."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": name, "config": json.dumps(dataclasses.asdict(model.config)), "state": model.state_dict()}
    torch.save(payload, path)


def load_checkpoint(path: Path) -> tuple[str, GenerativeModel]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    name = payload["model"]
    model = build_model(name, make_model_config(name, **json.loads(payload["config"])))
    model.load_state_dict(payload["state"])
    return name, model.eval()
