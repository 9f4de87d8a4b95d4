"""Tables derived from fitting records: summary.csv (pandas) and leaderboard.md.

One table per preset, protocol, image set and budget (a step count, a training-time or a FLOP budget). Every
mean carries a 95 % confidence interval over images x seeds, and every representation is compared with bicubic
interpolation of the same training pixels, pairwise per image (bench/stats.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from .stats import ci_half_width, paired_comparison

TABLE = ["preset", "protocol", "image_set", "budget"]
GROUP = [*TABLE, "representation", "kind"]
METRICS = ["psnr_test", "psnr_full", "ssim_full", "psnr_train", "seconds"]
REFERENCE = "bicubic"
VERDICTS = {"above": "above bicubic", "below": "below bicubic",
            "not distinguishable": "not distinguishable from bicubic", "one run: no interval": "one run: no interval"}


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
    """Records with their budget label; reference rows repeated in every budget of their image set."""
    frame = frame.assign(budget=[budget_label(r) for r in frame.to_dict("records")])
    fitted, references = frame[frame["kind"] != "reference"], frame[frame["kind"] == "reference"]
    budgets = fitted[TABLE].drop_duplicates()
    if references.empty or budgets.empty:
        return frame
    repeated = references.drop(columns="budget").merge(budgets, on=TABLE[:-1])
    return pd.concat([fitted, repeated], ignore_index=True)


def summarize(records: list[dict]) -> pd.DataFrame:
    """Per table and representation: counts, mean / std / 95 % CI of each metric, and the paired gap to bicubic.

    Only finished fits count towards the means; `runs`, `ok`, `diverged` and `errors` say how many there were.
    Columns added to the means: <metric>_ci95 (half-width), delta_bicubic_mean / _ci95 (test PSNR minus
    bicubic's on the same image, over images x seeds), delta_bicubic_p (Wilcoxon over per-image means),
    images, verdict, settings_from (where the settings came from, e.g. a tuned file).
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
        settings_from=("settings_from", lambda s: "; ".join(sorted({str(v) for v in s if v}))),
    )
    ok = frame[frame["status"] == "ok"]
    stats = ok.groupby(GROUP)[METRICS].agg(["mean", lambda s: s.std(ddof=0)])
    stats.columns = [f"{metric}_{'mean' if stat == 'mean' else 'std'}" for metric, stat in stats.columns]
    summary = counts.join(stats).join(_intervals(ok)).reset_index()
    summary["params"] = summary["params"].astype(int)
    return summary.sort_values([*TABLE, "psnr_test_mean"], ascending=[True, True, True, True, False])


def _intervals(ok: pd.DataFrame) -> pd.DataFrame:
    """The confidence interval of the test PSNR and the paired comparison with bicubic, per group."""
    bicubic = ok[ok["representation"] == REFERENCE].set_index(TABLE[:-1] + ["image"])["psnr_test"]
    bicubic = bicubic[~bicubic.index.duplicated()].to_dict()
    rows = []
    for group, runs in ok.groupby(GROUP):
        row = dict(zip(GROUP, group))
        row.update({f"{metric}_ci95": _ci(runs[metric]) for metric in METRICS})
        row["images"] = runs["image"].nunique()
        if row["kind"] != "reference":
            differences: dict[str, list[float]] = {}
            for run in runs.itertuples():
                reference = bicubic.get((run.preset, run.protocol, run.image_set, run.image))
                if reference is not None:
                    differences.setdefault(run.image, []).append(run.psnr_test - reference)
            if differences:
                comparison = paired_comparison(differences)
                row.update(delta_bicubic_mean=comparison.mean, delta_bicubic_ci95=comparison.ci95,
                           delta_bicubic_p=comparison.p, verdict=VERDICTS[comparison.verdict])
        rows.append(row)
    columns = [*(f"{metric}_ci95" for metric in METRICS), "images", "delta_bicubic_mean", "delta_bicubic_ci95",
               "delta_bicubic_p", "verdict"]
    return pd.DataFrame(rows).set_index(GROUP).reindex(columns=columns)


def _ci(values: pd.Series) -> float:
    return ci_half_width(values.tolist())


def leaderboard_markdown(summary: pd.DataFrame) -> str:
    """One table per (preset, protocol, image set, budget), best test PSNR first, with the paired gap to bicubic."""
    if summary.empty:
        return "# Fitting leaderboard\n\nNo finished runs yet.\n"
    lines = ["# Fitting leaderboard", "",
             "Test PSNR is on held-out pixels (`alternate`: y[1::2, 1::2], the FFN test PSNR; `full`: all pixels).",
             "Mean ± 95 % confidence interval (t) over images × seeds. Δ bicubic: test PSNR minus bicubic interpolation",
             "of the training grid on the same image, mean ± 95 % CI over images × seeds; p: Wilcoxon signed-rank over",
             "the per-image means (with n images it cannot go below 2/2^n). A gap whose interval includes 0 is",
             "\"not distinguishable from bicubic\".", ""]
    for (preset, protocol, image_set, budget), table in summary.groupby(TABLE, sort=True):
        settings = "; ".join(sorted({s for s in table["settings_from"] if isinstance(s, str) and s}))
        lines += [f"## {image_set} · preset `{preset}` · protocol `{protocol}` · budget {budget or '–'}", "",
                  f"Settings: {settings or 'each representation’s source defaults and the preset’s size class'}.", "",
                  "| # | representation | params | test PSNR (dB) | full PSNR (dB) | SSIM | s / fit | "
                  "Δ bicubic (dB) | verdict | p (images) | runs |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for rank, row in enumerate(table.sort_values("psnr_test_mean", ascending=False).itertuples(), 1):
            reference = row.kind == "reference"
            name = f"*{row.representation}* (reference)" if reference else row.representation
            failed = row.runs - row.ok
            delta = "" if reference or pd.isna(row.delta_bicubic_mean) else _pm(row.delta_bicubic_mean,
                                                                                row.delta_bicubic_ci95, sign=True)
            verdict = "" if reference or not isinstance(row.verdict, str) else row.verdict
            p = "" if reference or pd.isna(row.delta_bicubic_p) else f"{row.delta_bicubic_p:.3f} ({row.images})"
            lines.append(
                f"| {rank} | {name} | {row.params:,} | {_pm(row.psnr_test_mean, row.psnr_test_ci95)} | "
                f"{_pm(row.psnr_full_mean, row.psnr_full_std)} | {_pm(row.ssim_full_mean, row.ssim_full_std, 3)} | "
                f"{row.seconds_mean:.1f} | {delta} | {verdict} | {p} | "
                f"{row.runs}{f' ({failed} failed)' if failed else ''} |"
            )
        lines.append("")
    lines.append("Full PSNR and SSIM: mean ± std. s / fit: training seconds (a batched fit's share of its batch).")
    return "\n".join(lines) + "\n"


def write_tables(records: list[dict], folder: Path) -> pd.DataFrame:
    summary = summarize(records)
    folder.mkdir(parents=True, exist_ok=True)
    summary.to_csv(folder / "summary.csv", index=False, float_format="%.4f")
    (folder / "leaderboard.md").write_text(leaderboard_markdown(summary))
    return summary


def _pm(mean: float, spread: float, digits: int = 2, sign: bool = False) -> str:
    if pd.isna(mean):
        return "–"
    value = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return value if pd.isna(spread) or not math.isfinite(spread) else f"{value} ± {spread:.{digits}f}"
