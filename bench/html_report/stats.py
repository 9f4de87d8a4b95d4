"""Leaderboard statistics for the page, from the same code as the suite's own leaderboard (fitbench.report), so the
two never disagree: means with 95 % t-intervals over images x seeds, and each fit's difference to bicubic
interpolation of the same image (a paired comparison: the image's difficulty cancels).
"""

from __future__ import annotations

import pandas as pd

from ..report import REFERENCE, TABLE, summarize, with_budgets

GROUP = TABLE  # one leaderboard per preset, protocol, image set and budget


def leaderboard(records: list[dict]) -> pd.DataFrame:
    """One row per (group, representation): counts, metric means and CIs, Δ bicubic and its verdict."""
    table = summarize(records)
    table["verdict"] = [("reference" if kind == "reference" else verdict if isinstance(verdict, str) else "")
                        for kind, verdict in zip(table["kind"], table["verdict"])]
    return table.reset_index(drop=True)


def with_delta_bicubic(records: list[dict]) -> pd.DataFrame:
    """Finished fits with their budget label and `delta_bicubic`: test PSNR minus bicubic's on the same image."""
    frame = with_budgets(pd.DataFrame(records))
    frame = frame[frame["status"] == "ok"].copy()
    bicubic = (frame[frame["representation"] == REFERENCE]
               .groupby(GROUP + ["image"])["psnr_test"].mean().rename("bicubic_psnr_test"))
    frame = frame.join(bicubic, on=GROUP + ["image"])
    frame["delta_bicubic"] = frame["psnr_test"] - frame["bicubic_psnr_test"]
    return frame


def per_image_delta(finished: pd.DataFrame) -> pd.DataFrame:
    """Rows: group and image; columns: representations; values: mean over seeds of Δ bicubic (dB)."""
    fitted = finished[finished["kind"] != "reference"]
    if fitted.empty:
        return pd.DataFrame()
    deltas = fitted.pivot_table(index=GROUP + ["image"], columns="representation", values="delta_bicubic",
                                aggfunc="mean")
    return deltas.join(finished.groupby(GROUP + ["image"])["bicubic_psnr_test"].first()).reset_index()
