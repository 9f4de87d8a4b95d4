"""Tables derived from fitting records: summary.csv (pandas) and leaderboard.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

GROUP = ["preset", "protocol", "image_set", "representation", "kind"]
METRICS = ["psnr_test", "psnr_full", "ssim_full", "psnr_train", "seconds"]


def summarize(records: list[dict]) -> pd.DataFrame:
    """Mean and std (over images and seeds) of each metric per preset, protocol, image set and representation.

    Only finished fits count towards the means; `runs`, `ok`, `diverged` and `errors` say how many there were.
    """
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame(records)
    counts = frame.groupby(GROUP).agg(
        runs=("status", "size"),
        ok=("status", lambda s: int((s == "ok").sum())),
        diverged=("status", lambda s: int((s == "diverged").sum())),
        errors=("status", lambda s: int((s == "error").sum())),
        params=("params", "median"),
    )
    ok = frame[frame["status"] == "ok"]
    stats = ok.groupby(GROUP)[METRICS].agg(["mean", lambda s: s.std(ddof=0)])
    stats.columns = [f"{metric}_{'mean' if stat == 'mean' else 'std'}" for metric, stat in stats.columns]
    summary = counts.join(stats).reset_index()
    summary["params"] = summary["params"].astype(int)
    return summary.sort_values(["preset", "protocol", "image_set", "psnr_test_mean"], ascending=[True, True, True, False])


def leaderboard_markdown(summary: pd.DataFrame) -> str:
    """One table per (preset, protocol, image set), best test PSNR first, with the gap to bicubic interpolation."""
    if summary.empty:
        return "# Fitting leaderboard\n\nNo finished runs yet.\n"
    lines = ["# Fitting leaderboard", "",
             "Test PSNR is on held-out pixels (`alternate`: y[1::2, 1::2], the FFN test PSNR; `full`: all pixels).",
             "Mean ± std over images and seeds. Δ bicubic: test PSNR minus bicubic interpolation of the training grid.",
             ""]
    for (preset, protocol, image_set), table in summary.groupby(["preset", "protocol", "image_set"], sort=True):
        bicubic = table.loc[table["representation"] == "bicubic", "psnr_test_mean"]
        reference = float(bicubic.iloc[0]) if len(bicubic) else None
        lines += [f"## {image_set} · preset `{preset}` · protocol `{protocol}`", "",
                  "| # | representation | params | test PSNR (dB) | full PSNR (dB) | SSIM | train PSNR (dB) | s / fit | Δ bicubic (dB) | runs |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for rank, row in enumerate(table.sort_values("psnr_test_mean", ascending=False).itertuples(), 1):
            delta = "" if reference is None or row.kind == "reference" else f"{row.psnr_test_mean - reference:+.2f}"
            if delta and row.psnr_test_mean < reference:
                delta += " (below bicubic)"
            name = f"*{row.representation}* (reference)" if row.kind == "reference" else row.representation
            failed = row.runs - row.ok
            lines.append(
                f"| {rank} | {name} | {row.params:,} | {_pm(row.psnr_test_mean, row.psnr_test_std)} | "
                f"{_pm(row.psnr_full_mean, row.psnr_full_std)} | {_pm(row.ssim_full_mean, row.ssim_full_std, 3)} | "
                f"{_pm(row.psnr_train_mean, row.psnr_train_std)} | {row.seconds_mean:.1f} | {delta} | "
                f"{row.runs}{f' ({failed} failed)' if failed else ''} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_tables(records: list[dict], folder: Path) -> pd.DataFrame:
    summary = summarize(records)
    folder.mkdir(parents=True, exist_ok=True)
    summary.to_csv(folder / "summary.csv", index=False, float_format="%.4f")
    (folder / "leaderboard.md").write_text(leaderboard_markdown(summary))
    return summary


def _pm(mean: float, std: float, digits: int = 2) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
