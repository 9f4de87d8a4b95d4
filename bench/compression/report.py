"""Everything derived from the compression records: points.csv, matched.csv, bd.csv, summary.csv, coders.csv,
CompressAI-format JSON per method, published.csv and rd.png. Reads only the records (the contract), never the
models.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from scipy.interpolate import PchipInterpolator  # noqa: E402

from ..paths import inside, safe_name  # noqa: E402
from .bd import bd_psnr, bd_rate, pareto_front  # noqa: E402
from .codecs import ANCHOR  # noqa: E402
from .entropy import CODER_IDS  # noqa: E402
from .published import published_table  # noqa: E402

POINT_COLUMNS = ["image", "method", "kind", "config", "quantizer", "bytes", "bpp", "psnr", "ssim", "encode_seconds",
                 "decode_seconds", "seconds", "status", "stream", "coder",
                 *(f"bytes_{name}" for name in CODER_IDS)]
SUMMARY_RATES = (0.1, 0.2, 0.3, 0.5)


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
            by_coder = {f"bytes_{name}": size for name, size in (point.get("coder_bytes") or {}).items()}
            rows.append({**point, **by_coder, "image": record["image"], "method": record["method"],
                         "kind": record["kind"], "config": config, "quantizer": quantizer,
                         "seconds": record.get("seconds", 0.0), "status": record["status"]})
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
        target = inside(folder, Path("json") / f"{safe_name(method)}.json")  # a plugin may name a method anything
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(payload, indent=2))


def plot_rd(curves: dict[str, pd.DataFrame], kinds: dict[str, str], title: str, path: Path) -> None:
    """Left: PSNR against bpp as measured here (codecs dashed, each representation's Pareto front over its
    points). Right: the published Kodak points, dashed, in their own panel: not measured here, other images."""
    figure, (ax, ref) = plt.subplots(1, 2, figsize=(13, 5.2), layout="constrained", sharey=False)
    codec_styles = iter([("0.45", "-."), ("0.3", ":"), ("0.6", (0, (5, 2, 1, 2))), ("0.5", "--")])
    colours = iter(plt.get_cmap("tab20").colors)
    for method, curve in sorted(curves.items(), key=lambda item: (kinds[item[0]] != "codec", item[0])):
        bpp, psnr = pareto_front(curve["bpp"].to_numpy(), curve["psnr"].to_numpy())
        if kinds[method] == "codec":  # greys and dashes; the anchor black and on top
            colour, style = ("k", "--") if method == ANCHOR else next(codec_styles, ("0.5", "--"))
            ax.plot(bpp, psnr, linestyle=style, color=colour, linewidth=1.6 if method == ANCHOR else 1.2,
                    label=f"{method} (anchor)" if method == ANCHOR else method, zorder=3 if method == ANCHOR else 2)
            continue
        colour = next(colours, None)
        ax.plot(bpp, psnr, "-o", markersize=3, label=method, color=colour)
        ax.scatter(curve["bpp"], curve["psnr"], s=8, alpha=0.3, color=colour)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncols=2)
    for method, rows in published_table().groupby("method", sort=False):
        ref.plot(rows["bpp"], rows["psnr"], "--o", markersize=3, linewidth=1, label=method)
    ref.set_title("published, Kodak, not measured here\n(C3's baselines/kodak.py; other images than the left panel)",
                  fontsize=9)
    ref.legend(fontsize=7)
    for axis in (ax, ref):
        axis.set_xscale("log")
        axis.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 4, 8, 16, 32]))
        axis.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # log minor labels overlap
        axis.set_xlabel("bits per pixel (from the bytes written)")
        axis.set_ylabel("PSNR (dB, 8-bit RGB)")
        axis.grid(True, which="both", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def psnr_at(curve: pd.DataFrame, rate: float) -> float:
    """PSNR at `rate` on the curve's Pareto front (pchip in log-rate); nan outside the points' range."""
    bpp, psnr = pareto_front(curve["bpp"].to_numpy(), curve["psnr"].to_numpy())
    if len(bpp) == 0 or not bpp[0] <= rate <= bpp[-1]:
        return float("nan")
    if len(bpp) == 1:
        return float(psnr[0])
    return float(PchipInterpolator(np.log(bpp), psnr)(np.log(rate)))


def rate_table(curves: dict[str, pd.DataFrame], kinds: dict[str, str], bd: pd.DataFrame,
               rates: tuple[float, ...] = SUMMARY_RATES) -> pd.DataFrame:
    """Per representation: PSNR at each rate beside every codec's at the same rate, and BD-rate against JPEG."""
    codecs = sorted(m for m in curves if kinds[m] == "codec")
    rows = []
    for method, curve in sorted(curves.items()):
        if kinds[method] == "codec":
            continue
        row = {"method": method}
        for rate in rates:
            row[f"psnr@{rate:g}"] = psnr_at(curve, rate)
            for codec in codecs:
                row[f"{codec}@{rate:g}"] = psnr_at(curves[codec], rate)
        match = bd.loc[bd["method"] == method]
        row["bd_rate_vs_jpeg_%"] = float(match["bd_rate_percent"].iloc[0]) if len(match) else float("nan")
        row["bd_psnr_vs_jpeg_db"] = float(match["bd_psnr_db"].iloc[0]) if len(match) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def coder_table(points: pd.DataFrame) -> pd.DataFrame:
    """Per representation and quantizer, the ans coder's saving against the best byte coder (zlib or lzma) and
    against raw bit-packing, in % of the stream: mean, min and max over the streams."""
    columns = ["method", "quantizer", "streams", "ans_vs_best_byte_coder_mean_%", "ans_vs_best_byte_coder_min_%",
               "ans_vs_best_byte_coder_max_%", "ans_vs_raw_mean_%", "ans_chosen_%"]
    needed = {"bytes_ans", "bytes_zlib", "bytes_lzma", "bytes_raw"}
    rows = points[(points["kind"] == "representation")].dropna(subset=[c for c in needed if c in points])
    if not needed <= set(points.columns) or rows.empty:
        return pd.DataFrame(columns=columns)
    rows = rows.assign(
        byte_best=rows[["bytes_zlib", "bytes_lzma"]].min(axis=1),
        saving=lambda r: 100 * (1 - r["bytes_ans"] / r["byte_best"]),
        saving_raw=lambda r: 100 * (1 - r["bytes_ans"] / r["bytes_raw"]))
    table = []
    for (method, quantizer), group in [(("all", "all"), rows), *rows.groupby(["method", "quantizer"])]:
        table.append([method, quantizer, len(group), group["saving"].mean(), group["saving"].min(),
                      group["saving"].max(), group["saving_raw"].mean(), 100 * (group["coder"] == "ans").mean()])
    return pd.DataFrame(table, columns=columns)


def write_reports(records: list[dict], folder: Path, title: str) -> pd.DataFrame:
    """Write every derived output into `folder`; returns the per-rate summary table."""
    points = points_table(records)
    points.to_csv(folder / "points.csv", index=False)
    matched_table(points).to_csv(folder / "matched.csv", index=False)
    bd = bd_table(points)
    bd.to_csv(folder / "bd.csv", index=False)
    coder_table(points).to_csv(folder / "coders.csv", index=False)
    published_table().to_csv(folder / "published.csv", index=False)
    curves = averaged_curves(points)
    kinds = dict(zip(points["method"], points["kind"]))
    write_compressai_json(curves, points, folder)
    plot_rd(curves, kinds, title, folder / "rd.png")
    summary = rate_table(curves, kinds, bd)
    summary.to_csv(folder / "summary.csv", index=False)
    return summary


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
