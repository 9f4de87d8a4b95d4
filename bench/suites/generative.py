"""Generative suite: train functional generative models on MNIST and score their samples against the test set."""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ..engine import resolve_device
from ..executor import execute_pending, report_failures
from ..generative.budget import KINDS, Budget
from ..generative.data import GENERATOR_POOL, load_mnist, split_training
from ..generative.features import load_or_train
from ..generative.models import MODELS, get_model_entry, make_model_config
from ..generative.presets import GENERATIVE_PRESETS, GenerativePreset
from ..generative.runs import REFERENCES, GenerativeRun, ScoringContext, execute_generative, keep_artifacts
from ..options import SuiteOptions, option
from ..presets import get_preset
from ..records import RecordLog, records_of
from . import register_suite

MNIST_TRAIN_SIZE = 60000
SUITE_SET = {"num_train"}  # config fields the suite sets itself (one latent per training image)
COLUMNS = ["model", "form", "kind", "budget", "epochs", "steps", "train_seconds", "cpu_seconds", "fd", "kid",
           "kid_std", "precision", "recall", "class_acc", "n_samples", "n_real", "scored_on", "device", "threads",
           "extractor", "layer", "classifier_acc", "preset", "params", "source"]
SHOWN = ["model", "form", "kind", "budget", "epochs", "steps", "train_seconds", "cpu_seconds", "fd", "kid",
         "precision", "recall", "class_acc"]


@dataclass(frozen=True)
class GenerativeOptions:
    models: str | None = option(None, f"comma-separated models (default: all: {', '.join(MODELS)})")
    budget: str | None = option(None, "every model's training budget (default: the preset's): " + "; ".join(
        f"{kind}=N: {meaning}" for kind, meaning in KINDS.items()), metavar="KIND=AMOUNT")
    validation: bool = option(False, "score against a held-out validation split of MNIST train instead of the test "
                              "set; for choosing settings (never choose them on the test set)")
    classifier_cache: Path | None = option(None, "folder of the cached feature classifier (default: "
                                           "~/.cache/fitbench/classifiers; not under the data root, which may be a "
                                           "read-only shared copy of the datasets)")


def chosen_models(options: SuiteOptions) -> list[str]:
    text = options.own_or(GenerativeOptions).models
    names = [n.strip() for n in text.split(",") if n.strip()] if text else list(MODELS)
    for name in names:
        get_model_entry(name)  # raises with the valid names
    return names


def check_settings(options: SuiteOptions, names: list[str]) -> None:
    """Every --set names a model that runs and a field the suite does not set itself (values: make_model_config)."""
    for name, fields in options.settings.items():
        target = f"--set {name}.{next(iter(fields))}"
        if name not in MODELS:
            raise ValueError(f"{target}: unknown generative model {name!r}; choose from: {', '.join(MODELS)}")
        if name not in names:
            raise ValueError(f"{target}: {name} is not among the models run ({', '.join(names)})")
        if fixed := SUITE_SET & set(fields):
            raise ValueError(f"--set {name}.{fixed.pop()}: set by the suite (one latent per training image)")


def plan_runs(options: SuiteOptions, preset: GenerativePreset) -> list[GenerativeRun]:
    """The reference rows, then every selected model with the preset's (and --set's) config overrides.

    Everything is checked here, before any data is loaded or anything trains: models, settings (type and range),
    the budget and the device.
    """
    names = chosen_models(options)
    check_settings(options, names)
    own: GenerativeOptions = options.own_or(GenerativeOptions)
    budget = Budget.parse(own.budget) if own.budget else preset.budget
    device = str(resolve_device(options.device))
    budget.check_device(device)
    scored_on = "validation" if own.validation else "test"
    if scored_on == "validation" and (preset.train_count is None or preset.train_count > GENERATOR_POOL):
        raise ValueError(f"--validation: the {preset.name} preset trains on the validation images too; "
                         "use the smoke or standard preset")
    train_count = preset.train_count or MNIST_TRAIN_SIZE
    common = dict(preset=preset.name, budget=budget, train_count=train_count, n_samples=preset.n_samples,
                  classifier=preset.classifier, scored_on=scored_on, device=device, threads=torch.get_num_threads(),
                  kid_subsets=preset.kid_subsets)
    runs = [GenerativeRun(name, form="", **common) for name in REFERENCES]
    for name in names:
        entry = get_model_entry(name)
        overrides = {**preset.overrides.get(name, {}), **options.settings.get(name, {})}
        if "num_train" in entry.config_cls.__dataclass_fields__:
            overrides["num_train"] = train_count  # auto-decoders keep one latent per training image
        make_model_config(name, **overrides)  # fail on a bad --set before anything trains
        form = entry.form + (" + --set" if name in options.settings else "")
        runs.append(GenerativeRun(name, form=form, overrides=tuple(sorted(overrides.items())), **common))
    return runs


@register_suite("generative", "train FOKR, the Fourier-net generator (each as written and at its best), VAE and "
                "CVAE on MNIST for equal budgets; FID-like scores",
                common=("preset", "settings", "data", "device", "records", "tracking"), options=GenerativeOptions,
                presets=GENERATIVE_PRESETS, default_preset="standard")
def run_generative(options: SuiteOptions) -> int:
    preset = get_preset(options.preset, GENERATIVE_PRESETS)
    runs = plan_runs(options, preset)  # checks models and settings before any data is loaded or anything trains
    scored_on = runs[0].scored_on
    train_all, test_all = load_mnist(True, options.data_root), load_mnist(False, options.data_root)
    splits = split_training(train_all, preset.train_count)
    reference = (splits.validation if scored_on == "validation" else test_all).head(preset.n_samples)
    if min(len(reference), len(splits.real_pool)) < preset.n_samples:
        raise ValueError(f"the {preset.name} preset scores {preset.n_samples} images, but there are only "
                         f"{len(reference)} {scored_on} images and {len(splits.real_pool)} for the real row")
    cache = options.own_or(GenerativeOptions).classifier_cache or Path.home() / ".cache" / "fitbench" / "classifiers"
    features = load_or_train(preset.classifier, cache, splits.classifier, test_all)
    print(f"feature network: {features.description}; cached at {features.path}", file=sys.stderr)

    folder = options.suite_dir("generative")
    log = RecordLog(folder / "runs.jsonl")
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)
    context = ScoringContext(splits.generators, splits.real_pool, reference, features.extractor(reference.images),
                             features)
    failed = execute_pending(runs, log, functools.partial(execute_generative, context=context),
                             keep_artifacts(folder))

    current = records_of(log.read(), {run.key for run in runs})
    table = write_metrics(current, folder / "metrics.csv")
    print(table_markdown(table, preset, scored_on))
    print(f"results: {folder}/metrics.csv, runs.jsonl, samples/, interpolation/, checkpoints/")
    return report_failures(failed, lambda record: record.model)


def write_metrics(records: list[dict], path: Path) -> pd.DataFrame:
    """metrics.csv: one row per finished model or reference of this invocation, references first."""
    rows = [r for r in records if r.get("status") == "ok"]
    table = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)
    table = table.sort_values(["kind", "model"], ascending=[False, True], kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def table_markdown(table: pd.DataFrame, preset: GenerativePreset, scored_on: str) -> str:
    """metrics.csv as a Markdown table (references first), with what the scores were computed on."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "-" if pd.isna(value) else f"{value:.4g}"
        return "" if pd.isna(value) else str(value)

    extractor = table["extractor"].iloc[0] if len(table) else "-"
    against = "MNIST test images" if scored_on == "test" else "validation images (held-out MNIST train)"
    lines = [f"generative suite, preset {preset.name}: {preset.n_samples} samples per model vs {preset.n_samples} "
             f"{against}; features: {extractor}", "",
             "| " + " | ".join(SHOWN) + " |", "|" + "---|" * len(SHOWN)]
    lines += ["| " + " | ".join(cell(row[c]) for c in SHOWN) + " |" for _, row in table.iterrows()]
    return "\n".join(lines)
