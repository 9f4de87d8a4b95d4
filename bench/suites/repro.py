"""Repro suite: the FFN paper's 2D image-regression table, measured (OUT/fitting, preset paper) beside published.

It fits nothing: `--suite fitting --preset paper --images ffn-natural-test` (and ffn-text-test) write the records,
this reads them (docs/repro.md; scripts/gpu_repro.sh runs the lot).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pandas as pd

from ..options import SuiteOptions, option
from ..records import RecordLog
from ..repro import PAPER, TEST_SETS, compare, comparison_markdown, project
from . import register_suite


@dataclass(frozen=True)
class ReproOptions:
    project_within: float | None = option(None, "instead of the table, project the paper run's fitting time from "
                                          "short probe fits in OUT/fitting (each batch's steady step time x the "
                                          "paper's steps, for both test sets); exit 3 if it exceeds SECONDS",
                                          metavar="SECONDS")


@register_suite("repro", "the FFN paper's 2D image-regression table: the paper-preset fits in OUT/fitting beside the "
                "published figures (fits nothing itself)", common=("representations",), options=ReproOptions)
def run_repro(options: SuiteOptions) -> int:
    records = RecordLog(options.suite_dir("fitting") / "runs.jsonl").read()
    if options.representations:
        records = [r for r in records if r["representation"] in options.representations]
    limit = options.own_or(ReproOptions).project_within
    if limit is not None:
        return print_projection(records, limit, options.representations)
    rows = compare(records)
    if not rows:
        raise ValueError(f"no finished paper-preset fits of {' or '.join(TEST_SETS.values())} in "
                         f"{options.suite_dir('fitting') / 'runs.jsonl'}; run `python run_bench.py fitting "
                         f"--preset paper --images ffn-natural-test --reps relu_mlp,basic,positional,fourier_features "
                         f"--out {options.out}` (and ffn-text-test) first")
    table = comparison_markdown(rows)
    folder = options.suite_dir("repro")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "comparison.md").write_text(table)
    pd.DataFrame([{"images": r.kind, "mapping": r.mapping, "representation": r.representation, "n": r.images,
                   "measured_mean": r.mean, "measured_std": r.std,
                   "published_mean": r.published.mean if r.published else None,
                   "published_std": r.published.std if r.published else None, "difference": r.difference,
                   "within_std": r.within_std, "within_tolerance": r.within_tolerance,
                   "deviations": "; ".join(r.deviations)} for r in rows]).to_csv(folder / "comparison.csv",
                                                                                  index=False)
    print(table)
    print(f"repro: {folder / 'comparison.md'}, comparison.csv")
    return 0


def print_projection(records: list[dict], limit: float, wanted: list[str] | None) -> int:
    projections = project(records)
    if not projections:
        raise ValueError("--project-within: no finished fits with a step time in OUT/fitting to project from; run "
                         "a short probe first (scripts/gpu_repro.sh does)")
    if missing := sorted(set(wanted or ()) - {p.representation for p in projections}):
        raise ValueError(f"--project-within: no finished probe fit of {', '.join(missing)} in OUT/fitting (failed? "
                         "its record says why), so the run cannot be projected")
    for p in projections:
        print(f"{p.representation:18s} {1000 * p.step_seconds:8.1f} ms a step for {p.batch} images together "
              f"-> {p.seconds:6.0f} s for {PAPER.steps} steps on both test sets")
    if sizes := sorted({p.size for p in projections} - {PAPER.size}):
        print(f"note: probe fits at {', '.join(f'{s}²' for s in sizes)}, not the paper's {PAPER.size}²: the "
              "projection is of that size's steps")
    total = sum(p.seconds for p in projections)
    verdict = "within" if total <= limit else "OVER"
    print(f"projected fitting time: {total:.0f} s ({total / 60:.1f} min), {verdict} the {limit:.0f} s limit "
          "(start-up, evaluation and reconstructions not included)")
    if total > limit:
        print("projection over the limit: not starting the full run", file=sys.stderr)
        return 3
    return 0
