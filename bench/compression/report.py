"""Everything derived from the compression records: points.csv, matched.csv, bd.csv, CompressAI-format JSON per
method, and rd.png. Reads only the records (the contract), never the models.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .bd import bd_psnr, bd_rate, pareto_front  # noqa: E402

ANCHOR = "jpeg"
POINT_COLUMNS = ["image", "method", "kind", "config", "quantizer", "bytes", "bpp", "psnr", "ssim", "encode_seconds",
                 "decode_seconds", "seconds", "status", "stream"]


def points_table(records: list[dict]) -> pd.DataFrame:
    """One row per rate point of every finished record."""
    rows = []
    for record in records:
        if record.get("status") not in ("ok", "diverged"):
            continue
        for point in record["points"]:
            config, _, quantizer = point["setting"].rpartition(" ")
            if record["kind"] == "codec":
                config, quantizer = point["setting"], ""
            rows.append({**point, "image": record["image"], "method": record["method"], "kind": record["kind"],
                         "config": config, "quantizer": quantizer, "seconds": record.get("seconds", 0.0),
                         "status": record["status"]})
    return pd.DataFrame(rows, columns=POINT_COLUMNS)


def matched_table(points: pd.DataFrame) -> pd.DataFrame:
    """For every representation point, the JPEG file that is the largest not above its size, and the PSNR gap."""
    rows = []
    jpeg = points[points["method"] == ANCHOR]
    for _, point in points[points["kind"] == "representation"].iterrows():
        candidates = jpeg[(jpeg["image"] == point["image"]) & (jpeg["bytes"] <= point["bytes"])]
        match = candidates.loc[candidates["bytes"].idxmax()] if len(candidates) else None
        rows.append({
            "image": point["image"], "method": point["method"], "config": point["config"],
            "quantizer": point["quantizer"], "bytes": point["bytes"], "bpp": point["bpp"], "psnr": point["psnr"],
            "jpeg_quality": match["config"] if match is not None else "",  # none: JPEG cannot go this small
            "jpeg_bytes": match["bytes"] if match is not None else np.nan,
            "jpeg_bpp": match["bpp"] if match is not None else np.nan,
            "jpeg_psnr": match["psnr"] if match is not None else np.nan,
            "delta_psnr": point["psnr"] - match["psnr"] if match is not None else np.nan,
        })
    return pd.DataFrame(rows)


def bd_table(points: pd.DataFrame) -> pd.DataFrame:
    """BD-rate and BD-PSNR of each method against JPEG: per image on Pareto fronts, then averaged over images."""
    rows = []
    for method in sorted(set(points["method"]) - {ANCHOR}):
        per_image = []
        for image, test in points[points["method"] == method].groupby("image"):
            anchor = points[(points["method"] == ANCHOR) & (points["image"] == image)]
            if anchor.empty:
                continue
            a = pareto_front(anchor["bpp"].to_numpy(), anchor["psnr"].to_numpy())
            t = pareto_front(test["bpp"].to_numpy(), test["psnr"].to_numpy())
            per_image.append((bd_rate(*a, *t), bd_psnr(*a, *t)))
        rates, gains = (np.array(v, dtype=float) for v in zip(*per_image)) if per_image else ([np.nan], [np.nan])
        rows.append({"method": method, "kind": points.loc[points["method"] == method, "kind"].iloc[0],
                     "bd_rate_percent": _nanmean(rates), "bd_psnr_db": _nanmean(gains),
                     "images": int(np.isfinite(gains).sum())})
    return pd.DataFrame(rows, columns=["method", "kind", "bd_rate_percent", "bd_psnr_db", "images"])


def averaged_curves(points: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per method, each setting's metrics averaged over images (as CompressAI does), sorted by rate."""
    curves = {}
    for method, rows in points.groupby("method"):
        averaged = rows.groupby(["config", "quantizer"], as_index=False)[
            ["bpp", "psnr", "ssim", "encode_seconds", "decode_seconds"]].mean()
        curves[method] = averaged.sort_values("bpp").reset_index(drop=True)
    return curves


def write_compressai_json(curves: dict[str, pd.DataFrame], points: pd.DataFrame, folder: Path) -> None:
    """One `{"name", "description", "results": {...}}` file per method, the layout CompressAI's plot tools read."""
    for method, curve in curves.items():
        kind = points.loc[points["method"] == method, "kind"].iloc[0]
        front_bpp, _ = pareto_front(curve["bpp"].to_numpy(), curve["psnr"].to_numpy())
        front = curve[curve["bpp"].isin(front_bpp)]  # a curve, not a cloud: the settings that are best for their rate
        payload = {
            "name": method,
            "description": f"fitbench compression suite: {kind} {method}, metrics averaged over "
                           f"{points.loc[points['method'] == method, 'image'].nunique()} images",
            "results": {"bpp": front["bpp"].tolist(), "psnr-rgb": front["psnr"].tolist(),
                        "ms-ssim": [], "ssim": front["ssim"].tolist(),
                        "encoding_time": front["encode_seconds"].tolist(),
                        "decoding_time": front["decode_seconds"].tolist(),
                        "setting": [f"{c} {q}".strip() for c, q in zip(front["config"], front["quantizer"])]},
        }
        (folder / "json").mkdir(parents=True, exist_ok=True)
        (folder / "json" / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', method)}.json").write_text(json.dumps(payload, indent=2))


def plot_rd(curves: dict[str, pd.DataFrame], title: str, path: Path) -> None:
    """PSNR against bpp: each method's averaged points (faint) and their Pareto front (line)."""
    figure, ax = plt.subplots(figsize=(7, 4.8), layout="constrained")
    for method, curve in sorted(curves.items(), key=lambda item: item[0] not in ("jpeg", "webp", "jpeg2000")):
        codec = method in ("jpeg", "webp", "jpeg2000")
        bpp, psnr = pareto_front(curve["bpp"].to_numpy(), curve["psnr"].to_numpy())
        line, = ax.plot(bpp, psnr, "--" if codec else "-o", markersize=3, label=method, color="k" if method == ANCHOR
                        else None)
        if not codec:
            ax.scatter(curve["bpp"], curve["psnr"], s=8, alpha=0.3, color=line.get_color())
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.05, 0.1, 0.2, 0.3, 0.6, 1, 2, 4, 8]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log minor labels overlap
    ax.set_xlabel("bits per pixel (from the bytes written)")
    ax.set_ylabel("PSNR (dB, 8-bit)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def rate_table(curves: dict[str, pd.DataFrame], bd: pd.DataFrame, rates=(0.1, 0.3, 0.6)) -> pd.DataFrame:
    """Per representation: PSNR at each rate (interpolated in log-rate on its Pareto front) beside JPEG's."""
    def at(curve: pd.DataFrame, rate: float) -> float:
        bpp, psnr = pareto_front(curve["bpp"].to_numpy(), curve["psnr"].to_numpy())
        return float(np.interp(np.log(rate), np.log(bpp), psnr, left=np.nan, right=np.nan)) if len(bpp) else np.nan

    rows = []
    for method, curve in curves.items():
        if method == ANCHOR or method not in set(bd["method"]):
            continue
        row = {"method": method}
        for rate in rates:
            row[f"psnr@{rate}"] = at(curve, rate)
            row[f"jpeg@{rate}"] = at(curves[ANCHOR], rate) if ANCHOR in curves else np.nan
        row["bd_rate_vs_jpeg_%"] = float(bd.loc[bd["method"] == method, "bd_rate_percent"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def write_reports(records: list[dict], folder: Path, title: str) -> pd.DataFrame:
    """Write every derived output into `folder`; returns the per-rate summary table."""
    points = points_table(records)
    points.to_csv(folder / "points.csv", index=False)
    matched_table(points).to_csv(folder / "matched.csv", index=False)
    bd = bd_table(points)
    bd.to_csv(folder / "bd.csv", index=False)
    curves = averaged_curves(points)
    write_compressai_json(curves, points, folder)
    plot_rd(curves, title, folder / "rd.png")
    summary = rate_table(curves, bd)
    summary.to_csv(folder / "summary.csv", index=False)
    return summary


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
