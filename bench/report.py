"""Tables derived from fitting records: summary.csv (pandas), leaderboard.md and critical-difference diagrams.

One table per preset, protocol, image set and budget (a step count, a training-time or a FLOP budget), and one
more per preset, protocol and budget over all its image sets together when there are several. The image is the
unit of every statistic (bench/stats.py): each image's seeds are averaged first, then means carry a 95 %
t-interval over images; each representation is compared on the same images with the strongest interpolation
reference of the table (the one with the best mean test PSNR), by a Wilcoxon signed-rank test whose p is
Holm-adjusted across the table's representations and decides the verdict; and all methods are ranked per image,
with the Friedman test and the Nemenyi critical difference beside the ranks.

Fits that diverged count with their last finite output; a fit with no score (an error) counts as the worst on
its image in the tests and ranks, and in the `runs` / `failed` counts; it is never silently dropped.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .paths import inside, safe_name
from .stats import ALPHA, Friedman, PairedComparison, ci_half_width, friedman, paired_comparison, with_holm

TABLE = ["preset", "protocol", "image_set", "budget"]
GROUP = [*TABLE, "representation", "kind"]
METRICS = ["psnr_test", "psnr_full", "ssim_full", "psnr_train", "seconds"]
TOGETHER = " + "  # joins the image sets of a table over all of them


def budget_label(record: dict) -> str:
    """What bounded a fit: "300 steps", "60 s" or "1e+12 FLOPs" (references have none: "")."""
    if record.get("kind") == "reference":
        return ""
    given = lambda name: record.get(name) is not None and not pd.isna(record[name])  # noqa: E731
    if given("budget_seconds"):
        return f"{record['budget_seconds']:g} s"
    if given("budget_flops"):
        return f"{record['budget_flops']:.3g} FLOPs"
    return f"{int(record['max_steps']) if given('max_steps') and record['max_steps'] else record.get('steps')} steps"


def with_budgets(frame: pd.DataFrame) -> pd.DataFrame:
    """Records with their budget label; reference rows repeated in every budget of their image set; and, where a
    preset, protocol and budget span several image sets, every row again under the sets joined ("a + b")."""
    frame = frame.assign(budget=[budget_label(r) for r in frame.to_dict("records")])
    fitted, references = frame[frame["kind"] != "reference"], frame[frame["kind"] == "reference"]
    budgets = fitted[TABLE].drop_duplicates()
    if not references.empty and not budgets.empty:
        repeated = references.drop(columns="budget").merge(budgets, on=TABLE[:-1])
        frame = pd.concat([fitted, repeated], ignore_index=True)
    together = []
    for _, rows in frame.groupby(["preset", "protocol", "budget"], sort=False):
        sets = sorted(rows["image_set"].unique())
        if len(sets) > 1:
            together.append(rows.assign(image_set=TOGETHER.join(sets),
                                        image=rows["image_set"] + "/" + rows["image"]))
    return pd.concat([frame, *together], ignore_index=True) if together else frame


def scored(frame: pd.DataFrame) -> pd.Series:
    """Which fits have a score: finished or diverged (its last finite output), not an error."""
    return frame["psnr_test"].map(lambda v: v is not None and not pd.isna(v) and math.isfinite(v))


def summarize(records: list[dict]) -> pd.DataFrame:
    """Per table and representation: counts, means over images with 95 % intervals, ranks, and the verdict.

    Columns: runs / ok / diverged / errors; <metric>_mean, _ci95 (t over per-image means) and _std (over images);
    images (planned), failed_images (no score on any seed); mean_rank (1 = best) with the table's Friedman test;
    reference (the interpolator the verdicts use), delta_ref_mean / _ci95 (test PSNR minus the reference's on the
    same image), delta_ref_p (Wilcoxon), delta_ref_p_holm, verdict; settings_from.
    """
    if not records:
        return pd.DataFrame()
    frame = with_budgets(pd.DataFrame(records))
    if "settings_from" not in frame:
        frame["settings_from"] = ""
    counts = frame.groupby(GROUP).agg(
        runs=("status", "size"),
        ok=("status", lambda s: int((s == "ok").sum())),
        diverged=("status", lambda s: int((s == "diverged").sum())),
        errors=("status", lambda s: int((s == "error").sum())),
        params=("params", "median"),
        images=("image", "nunique"),
        settings_from=("settings_from", lambda s: "; ".join(sorted({str(v) for v in s if v}))),
    )
    per_image = frame[scored(frame)].groupby([*GROUP, "image"])[METRICS].mean()
    over_images = per_image.groupby(level=GROUP).agg(["mean", "std", _ci95])
    over_images.columns = [f"{metric}_{stat.strip('_')}" for metric, stat in over_images.columns]
    summary = counts.join(over_images).join(_verdicts(frame)).reset_index()
    summary["failed_images"] = summary["images"] - summary["scored_images"].fillna(0).astype(int)
    summary["params"] = summary["params"].fillna(0).astype(int)
    return summary.drop(columns="scored_images").sort_values(
        [*TABLE, "psnr_test_mean"], ascending=[True, True, True, True, False], na_position="last")


def per_image_scores(frame: pd.DataFrame) -> dict[tuple, dict[str, dict[str, float]]]:
    """table -> method -> image -> mean test PSNR over seeds (nan where no seed has a score)."""
    values = frame.assign(score=frame["psnr_test"].where(scored(frame)).astype(float))
    means = values.groupby([*TABLE, "representation", "image"])["score"].mean()
    tables: dict[tuple, dict[str, dict[str, float]]] = {}
    for (*table, method, image), score in means.items():
        tables.setdefault(tuple(table), {}).setdefault(method, {})[image] = float(score)
    return tables


def strongest_reference(frame: pd.DataFrame, methods: dict[str, dict[str, float]]) -> str | None:
    """The interpolation reference with the best mean test PSNR over the table's images."""
    references = set(frame.loc[frame["kind"] == "reference", "representation"]) & set(methods)

    def mean_score(reference: str) -> float:
        finite = [v for v in methods[reference].values() if math.isfinite(v)]
        return sum(finite) / len(finite) if finite else -math.inf

    return max(sorted(references), key=mean_score, default=None)


def rank_tests(records: list[dict]) -> dict[tuple, Friedman]:
    """table -> the Friedman test over all its methods (representations and references)."""
    frame = with_budgets(pd.DataFrame(records))
    return {table: test for table, methods in per_image_scores(frame).items()
            if (test := friedman(methods)) is not None}


def _verdicts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per group: scored images, mean rank, and the Holm-adjusted comparison with the strongest reference."""
    rows = []
    for table, methods in per_image_scores(frame).items():
        table_frame = frame[(frame[TABLE] == list(table)).all(axis=1)]
        kinds = table_frame.groupby("representation")["kind"].first()
        ranks = friedman(methods)
        reference = strongest_reference(table_frame, methods)
        comparisons: dict[str, PairedComparison] = {}
        if reference is not None:
            for method, scores in methods.items():
                if kinds[method] != "reference":
                    shared = [i for i in scores if not math.isnan(methods[reference].get(i, math.nan))]
                    comparisons[method] = paired_comparison(
                        {i: [scores[i] - methods[reference][i]] for i in shared})
        comparisons = with_holm(comparisons)
        for method, scores in methods.items():
            row = {**dict(zip(TABLE, table)), "representation": method, "kind": kinds[method],
                   "scored_images": sum(not math.isnan(s) for s in scores.values()),
                   "mean_rank": ranks.mean_ranks.get(method, math.nan) if ranks else math.nan}
            if method in comparisons:
                c = comparisons[method]
                row.update(reference=reference, delta_ref_mean=c.mean, delta_ref_ci95=c.ci95, delta_ref_p=c.p,
                           delta_ref_p_holm=c.p_adjusted, verdict=verdict_text(c.verdict(), reference))
            rows.append(row)
    columns = ["scored_images", "mean_rank", "reference", "delta_ref_mean", "delta_ref_ci95", "delta_ref_p",
               "delta_ref_p_holm", "verdict"]
    return pd.DataFrame(rows).set_index(GROUP).reindex(columns=columns)


def verdict_text(verdict: str, reference: str) -> str:
    return {"above": f"above {reference}", "below": f"below {reference}",
            "not distinguishable": f"not distinguishable from {reference}"}.get(verdict, verdict)


def table_title(table: tuple) -> str:
    preset, protocol, image_set, budget = table
    return f"{image_set} · preset `{preset}` · protocol `{protocol}` · budget {budget or '–'}"


def diagram_name(table: tuple) -> str:
    return safe_name("cd-" + "-".join(str(part) for part in table).replace(" ", "")) + ".png"


def leaderboard_markdown(summary: pd.DataFrame, tests: dict[tuple, Friedman] | None = None) -> str:
    """One table per (preset, protocol, image set, budget), best test PSNR first, with the verdict and ranks."""
    if summary.empty:
        return "# Fitting leaderboard\n\nNo finished runs yet.\n"
    tests = tests or {}
    lines = ["# Fitting leaderboard", "",
             "Test PSNR is on held-out pixels (`alternate`: y[1::2, 1::2], the FFN test PSNR; `full`: all pixels).",
             "The image is the unit: each image's seeds are averaged first; means ± 95 % t-interval over images.",
             "Δ ref: test PSNR minus the table's strongest interpolation reference on the same image. The verdict is",
             f"the Wilcoxon signed-rank test's at {ALPHA:.0%} after Holm's correction across the table's "
             "representations (p Holm);",
             "a fit with no score counts as the worst on its image. Mean rank: 1 = best on an image, with the Friedman",
             "test and the Nemenyi critical difference (CD, Demšar 2006): ranks closer than CD are not distinguishable.",
             ""]
    for table, rows in summary.groupby(TABLE, sort=True):
        settings = "; ".join(sorted({s for s in rows["settings_from"] if isinstance(s, str) and s}))
        references = {r for r in rows["reference"] if isinstance(r, str)}
        lines += [f"## {table_title(table)}", "",
                  f"Settings: {settings or 'each representation’s source defaults and the preset’s size class'}.", ""]
        if references:
            lines += [f"Verdicts against **{', '.join(sorted(references))}**, the strongest interpolation "
                      "reference on these images.", ""]
        if (test := tests.get(table)) is not None:
            lines += [f"Friedman over {len(test.mean_ranks)} methods × {test.images} images: χ² = "
                      f"{test.statistic:.1f}, p = {_p(test.p)}; CD = {test.critical_difference:.2f} "
                      f"(diagram: `{diagram_name(table)}`).", ""]
        lines += ["| # | representation | params | test PSNR (dB) | full PSNR (dB) | SSIM | s / fit | mean rank | "
                  "Δ ref (dB) | p | p Holm | verdict | images | runs |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for rank, row in enumerate(rows.sort_values("psnr_test_mean", ascending=False, na_position="last")
                                   .itertuples(), 1):
            reference = row.kind == "reference"
            fitted = not reference and isinstance(row.verdict, str)
            not_ok = row.runs - row.ok
            lines.append(
                f"| {rank} | {f'*{row.representation}* (reference)' if reference else row.representation} | "
                f"{row.params:,} | {_pm(row.psnr_test_mean, row.psnr_test_ci95)} | "
                f"{_pm(row.psnr_full_mean, row.psnr_full_ci95)} | {_pm(row.ssim_full_mean, row.ssim_full_ci95, 3)} | "
                f"{_number(row.seconds_mean, 1)} | {_number(row.mean_rank, 2)} | "
                f"{_pm(row.delta_ref_mean, row.delta_ref_ci95, sign=True) if fitted else ''} | "
                f"{_p(row.delta_ref_p) if fitted else ''} | {_p(row.delta_ref_p_holm) if fitted else ''} | "
                f"{row.verdict if fitted else ''} | "
                f"{row.images}{f' ({row.failed_images} failed)' if row.failed_images else ''} | "
                f"{row.runs}{f' ({not_ok} not ok)' if not_ok else ''} |")
        lines.append("")
    lines.append("s / fit: training seconds (a batched fit's share of its batch). images: planned images (failed: "
                 "no score on any seed); runs: fits, with those that diverged or failed.")
    return "\n".join(lines) + "\n"


def write_tables(records: list[dict], folder: Path) -> pd.DataFrame:
    """summary.csv, leaderboard.md and one critical-difference diagram per table under `folder`."""
    from .figures import critical_difference_diagram

    summary = summarize(records)
    tests = rank_tests(records) if records else {}
    folder.mkdir(parents=True, exist_ok=True)
    summary.to_csv(inside(folder, Path("summary.csv")), index=False, float_format="%.4f")
    inside(folder, Path("leaderboard.md")).write_text(leaderboard_markdown(summary, tests))
    for table, test in tests.items():
        critical_difference_diagram(test, table_title(table).replace("`", ""),
                                    inside(folder, Path("cd") / diagram_name(table)))
    return summary


def _ci95(values: pd.Series) -> float:
    return ci_half_width(values.tolist())


def _p(p: float) -> str:
    return "–" if pd.isna(p) else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _number(value: float, digits: int) -> str:
    return "–" if pd.isna(value) else f"{value:.{digits}f}"


def _pm(mean: float, spread: float, digits: int = 2, sign: bool = False) -> str:
    if pd.isna(mean):
        return "–"
    value = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return value if pd.isna(spread) or not math.isfinite(spread) else f"{value} ± {spread:.{digits}f}"
