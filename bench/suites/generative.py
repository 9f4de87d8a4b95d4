"""Generative suite: train functional generative models on MNIST and score their samples against the test set."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pandas as pd


from ..executor import execute_pending
from ..generative.data import load_mnist
from ..generative.features import load_or_train
from ..generative.models import MODELS, get_model_entry, make_model_config
from ..generative.presets import GENERATIVE_PRESETS, GenerativePreset
from ..generative.runs import REFERENCES, GenerativeRun, ScoringContext, execute_generative, keep_artifacts
from ..options import SuiteOptions
from ..presets import get_preset
from ..records import RecordLog, records_of
from . import register_suite

MNIST_TRAIN_SIZE = 60000
COLUMNS = ["model", "kind", "epochs", "train_seconds", "fd", "kid", "kid_std", "precision", "recall", "class_acc",
           "n_samples", "n_real", "extractor", "layer", "preset", "params"]


def add_arguments(group) -> None:
    group.add_argument("--models", help=f"generative: comma-separated models (default: all: {', '.join(MODELS)})")
    group.add_argument("--epochs", type=int, help="generative: epochs per model (default: the preset's)")
    group.add_argument("--classifier-cache", type=Path,
                       help="generative: folder of the cached feature classifier (default: ~/.cache/fitbench/classifiers)")


def plan_runs(options: SuiteOptions, preset: GenerativePreset) -> list[GenerativeRun]:
    """The reference rows, then every selected model with the preset's (and --set's) config overrides."""
    names = [n.strip() for n in options.args.models.split(",")] if getattr(options.args, "models", None) else list(MODELS)
    epochs = getattr(options.args, "epochs", None)
    if epochs is not None and epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {epochs}")
    train_count = preset.train_count or MNIST_TRAIN_SIZE
    common = dict(preset=preset.name, train_count=train_count, n_samples=preset.n_samples, n_real=preset.n_real,
                  classifier=preset.classifier, kid_subsets=preset.kid_subsets)
    runs = [GenerativeRun(name, epochs=0, **common) for name in REFERENCES]
    for name in names:
        entry = get_model_entry(name)  # raises with the valid names
        overrides = {**preset.overrides.get(name, {}), **options.settings.get(name, {})}
        if "num_train" in entry.config_cls.__dataclass_fields__:
            overrides["num_train"] = train_count  # auto-decoders keep one latent per training image
        make_model_config(name, **overrides)  # fail on a bad --set before anything trains
        runs.append(GenerativeRun(name, epochs=epochs or preset.epochs_for(name), max_seconds=preset.max_seconds,
                                  overrides=tuple(sorted(overrides.items())), **common))
    return runs


@register_suite("generative", "train FOKR, the Fourier-net generator, VAE and CVAE on MNIST; FID-like scores",
                add_arguments)
def run_generative(options: SuiteOptions) -> int:
    preset = get_preset(options.preset, GENERATIVE_PRESETS)
    runs = plan_runs(options, preset)  # checks models and settings before any data is loaded or anything trains
    train_all, test_all = load_mnist(True, options.data_root), load_mnist(False, options.data_root)
    # Not under the data root, which may be a read-only shared copy of the datasets.
    cache = getattr(options.args, "classifier_cache", None) or Path.home() / ".cache" / "fitbench" / "classifiers"
    features = load_or_train(preset.classifier, cache, train_all, test_all)
    print(f"feature network: {features.description}; cached at {features.path}", file=sys.stderr)
    train = train_all.shuffled_head(preset.train_count, seed=0)
    test = test_all.head(preset.n_real)

    folder = options.suite_dir("generative")
    log = RecordLog(folder / "runs.jsonl")
    if options.fresh and (moved := log.set_aside()):
        print(f"--fresh: previous records moved to {moved}", file=sys.stderr)
    context = ScoringContext(train, test, features.extractor(test.images), features)
    execute_pending(runs, log, functools.partial(execute_generative, context=context), keep_artifacts(folder))

    current = records_of(log.read(), {run.key for run in runs})
    table = write_metrics(current, folder / "metrics.csv")
    print(table_markdown(table, preset))
    print(f"results: {folder}/metrics.csv, runs.jsonl, samples/, interpolation/, checkpoints/")
    return 0


def write_metrics(records: list[dict], path: Path) -> pd.DataFrame:
    """metrics.csv: one row per finished model or reference of this invocation, references first."""
    rows = [r for r in records if r.get("status") == "ok"]
    table = pd.DataFrame(rows, columns=COLUMNS) if rows else pd.DataFrame(columns=COLUMNS)
    table = table.sort_values(["kind", "model"], ascending=[False, True], kind="stable")
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def table_markdown(table: pd.DataFrame, preset: GenerativePreset) -> str:
    """metrics.csv as a Markdown table (references first), with what the scores were computed on."""
    shown = ["model", "kind", "epochs", "train_seconds", "fd", "kid", "kid_std", "precision", "recall", "class_acc",
             "n_samples"]

    def cell(value) -> str:
        if isinstance(value, float):
            return "-" if pd.isna(value) else f"{value:.4g}"
        return str(value)

    extractor = table["extractor"].iloc[0] if len(table) else "-"
    lines = [f"generative suite, preset {preset.name}: {preset.n_samples} samples per model vs {preset.n_real} "
             f"MNIST test images; features: {extractor}", "",
             "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(row[c]) for c in shown) + " |" for _, row in table.iterrows()]
    return "\n".join(lines)
