"""One training loop and one checkpoint format for every generative model."""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..hardware import synchronize
from .budget import Budget
from .data import Digits
from .models import GenerativeModel, build_model, make_model_config

StepCallback = Callable[[int, float], None]


@dataclass
class TrainingOutcome:
    """What training actually used (a time budget ends mid-epoch; the clock it was measured on is the budget's)."""

    epochs: float  # completed, fractional when a time budget stopped training mid-epoch
    steps: int
    seconds: float  # wall clock, optimisation only
    cpu_seconds: float  # this process's CPU time over the same span, all threads
    final_loss: float
    logs: dict[str, float]  # the last step's loss terms, plus anything the model reports after training


def train(model: GenerativeModel, data: Digits, budget: Budget, on_step: StepCallback | None = None,
          device: torch.device | str = "cpu") -> TrainingOutcome:
    """Adam over shuffled minibatches, with the model's own lr(s) and batch, until `budget` is spent.

    The budget is checked after every step, so a time budget overshoots by at most one step. Batches are drawn on
    the CPU from the config's seed, so the same run sees the same batches on any device.
    """
    config = model.config
    torch.manual_seed(config.seed)
    model.to(device).train()
    images, labels = data.images.to(device), data.labels.to(device)
    optimiser = torch.optim.Adam(model.parameter_groups(), lr=config.lr, weight_decay=config.weight_decay)
    epochs = range(budget.epochs) if budget.epochs is not None else itertools.count()
    batches = (index for _ in epochs for index in torch.randperm(len(data)).split(config.batch_size))
    clock = budget.clock
    step, loss, logs = 0, torch.tensor(float("nan")), {}
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    start = clock() if clock else 0.0
    for index in batches:
        index = index.to(device)
        loss, logs = model.loss(images[index], labels[index], index)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        if on_step:
            on_step(step, loss.item())
        if clock and clock() - start >= budget.amount:
            break
    synchronize(torch.device(device))
    seconds, cpu_seconds = time.perf_counter() - start_wall, time.process_time() - start_cpu
    model.eval()
    logs = {**logs, **model.after_training()}
    return TrainingOutcome(step / steps_per_epoch(len(data), config.batch_size), step, seconds, cpu_seconds,
                           loss.item(), logs)


def steps_per_epoch(count: int, batch_size: int) -> int:
    return -(-count // batch_size)


def save_checkpoint(model: GenerativeModel, name: str, path: Path) -> None:
    """State dict (on the CPU) plus the model's name and config as JSON: loadable with weights_only=True."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.cpu() for key, value in model.state_dict().items()}
    payload = {"model": name, "config": json.dumps(dataclasses.asdict(model.config)), "state": state}
    torch.save(payload, path)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> tuple[str, GenerativeModel]:
    payload = torch.load(path, map_location="cpu", weights_only=True)
    name = payload["model"]
    model = build_model(name, make_model_config(name, **json.loads(payload["config"])))
    model.load_state_dict(payload["state"])
    return name, model.to(device).eval()
