"""Where a representation's stream loses to JPEG at low rates: the gap taken apart, from a compression run's records.

    python experiments/compression_gap.py OUT/compression [MAX_BPP]

For every representation stream at or below MAX_BPP (default 0.3) on every image, beside JPEG 4:2:0 on the same
image at the same bits per pixel (pchip on JPEG's Pareto front in log-rate, as summary.csv; nan below JPEG's
smallest file):

- `delta`: the stream's PSNR minus JPEG's at the stream's rate (what summary.csv and bd.csv report);
- `quant`: PSNR lost between the fitted float model and the decoded stream (quantization after tuning);
- `float_vs_jpeg`: the float model's PSNR minus JPEG's at the stream's rate: what the stream could reach if
  quantization cost nothing and the weights were still stored in the same bytes;
- `fixed`: bytes that are not the weights' codes (prefix, header, per-tensor offsets/steps and entropy models),
  and `delta_free`: the gap if those bytes were free (JPEG taken at the rate of the code bytes alone).

Reads only the records and the streams they name (the suite's contract), never refits anything.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fitbench.compression.bitstream import decode_stream, stream_overhead, trainable
from fitbench.compression.quantize import parse_quantizer
from fitbench.compression.report import points_table, psnr_at


def fixed_bytes(data: bytes) -> int:
    """Bytes of a stream that are not the coded weight values: prefix, header, the quantizer's side information
    (offsets and steps) and, for the ans coder, its per-tensor models (5 bytes each)."""
    decoded = decode_stream(data)
    shapes = [tuple(p.shape) for _, p in trainable(decoded.model)]
    layout = parse_quantizer(decoded.header.quantizer).layout(shapes)
    side = layout.side if layout.bits else 0  # fp16/fp32 payloads are all values
    models = 5 * decoded.header.tensors if decoded.coder == "ans" else 0
    parts = stream_overhead(data)
    return parts["prefix"] + parts["header"] + side + models


def main(folder: Path, max_bpp: float) -> None:
    records = [json.loads(line) for line in (folder / "points.jsonl").read_text().splitlines() if line.strip()]
    latest = {r["key"]: r for r in records}  # a retried run's last record
    records = list(latest.values())
    fit_psnr = {(r["image"], r["method"], r["key"]): r.get("fit_psnr") for r in records}
    points = points_table(records)
    rows = []
    for record in records:
        if record["kind"] != "representation" or record["status"] not in ("ok", "diverged"):
            continue
        jpeg = points[(points["method"] == "jpeg") & (points["image"] == record["image"])]
        pixels = record["size"] * record["width"]
        for point in record["points"]:
            if point["bpp"] > max_bpp or not point.get("stream"):
                continue
            data = (folder / point["stream"]).read_bytes()
            fixed = fixed_bytes(data)
            at_rate = psnr_at(jpeg, point["bpp"])
            at_code_rate = psnr_at(jpeg, 8 * (len(data) - fixed) / pixels)
            float_psnr = fit_psnr[(record["image"], record["method"], record["key"])]
            rows.append({"method": record["method"], "image": record["image"], "setting": point["setting"],
                         "bpp": point["bpp"], "psnr": point["psnr"], "jpeg": at_rate, "delta": point["psnr"] - at_rate,
                         "quant": float_psnr - point["psnr"], "float_vs_jpeg": float_psnr - at_rate,
                         "fixed": fixed, "fixed_%": 100 * fixed / len(data),
                         "delta_free": point["psnr"] - at_code_rate})
    table = pd.DataFrame(rows)
    if table.empty:
        print(f"no representation stream at or below {max_bpp} bpp in {folder}")
        return
    pd.set_option("display.width", 200)
    print(table.sort_values(["method", "image", "bpp"]).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    summary = table.groupby("method").agg(
        streams=("bpp", "size"), best_delta=("delta", "max"), mean_delta=("delta", "mean"),
        mean_quant=("quant", "mean"), best_float_vs_jpeg=("float_vs_jpeg", "max"),
        mean_fixed_pct=("fixed_%", "mean"), best_delta_free=("delta_free", "max"))
    print(f"\nper representation, streams at or below {max_bpp} bpp (dB; nan: below JPEG's smallest file):")
    print(summary.sort_values("best_delta", ascending=False).to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"\nall: best delta {np.nanmax(table['delta']):.2f} dB; mean quantization loss {table['quant'].mean():.2f} "
          f"dB; fixed bytes {table['fixed_%'].mean():.1f} % of a stream on average; best float-vs-JPEG "
          f"{np.nanmax(table['float_vs_jpeg']):.2f} dB")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.3)
