"""Leaderboard statistics for the page, from the same code as the suite's own leaderboard (fitbench.report), so the
two never disagree: means with 95 % t-intervals over images (seeds averaged first), each representation's
difference to the table's strongest interpolation reference on the same image with its Holm-adjusted verdict, and
the Friedman ranks.
"""

from __future__ import annotations

import pandas as pd

from ..report import TABLE, per_image_scores, rank_tests, strongest_reference, summarize, with_budgets

GROUP = TABLE  # one leaderboard per preset, protocol, image set and budget
__all__ = ["GROUP", "leaderboard", "per_image_delta", "rank_tests"]


def leaderboard(records: list[dict]) -> pd.DataFrame:
    """One row per (group, representation): counts, metric means and CIs, Δ reference, verdict and mean rank."""
    table = summarize(records)
    table["verdict"] = [("reference" if kind == "reference" else verdict if isinstance(verdict, str) else "")
                        for kind, verdict in zip(table["kind"], table["verdict"])]
    return table.reset_index(drop=True)


def per_image_delta(records: list[dict]) -> dict[tuple, pd.DataFrame]:
    """table -> rows: images; columns: the reference's test PSNR (`reference_psnr_test`, named in
    `.attrs["reference"]`) and each representation's mean over seeds of test PSNR minus the reference's (dB)."""
    frame = with_budgets(pd.DataFrame(records))
    tables = {}
    for table, methods in per_image_scores(frame).items():
        table_frame = frame[(frame[TABLE] == list(table)).all(axis=1)]
        reference = strongest_reference(table_frame, methods)
        if reference is None:
            continue
        fitted = sorted(set(table_frame.loc[table_frame["kind"] != "reference", "representation"]) & set(methods))
        base = pd.Series(methods[reference], name="reference_psnr_test")
        deltas = pd.DataFrame({m: pd.Series(methods[m]) - base for m in fitted}).join(base, how="right")
        deltas.index.name = "image"
        deltas.attrs["reference"] = reference
        tables[table] = deltas.reset_index()
    return tables
