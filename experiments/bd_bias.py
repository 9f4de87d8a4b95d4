"""The bias of Bjøntegaard deltas against a dense JPEG sweep: VCEG-M33's one cubic per curve (fitbench before
format 2) against the overlap-only pchip gap of bench/compression/bd.py.

    python experiments/bd_bias.py [SIZE]

For each built-in image, JPEG 4:2:0's whole quality sweep is the anchor; the test curves are a few of its own
points shifted by exactly +1 dB, or with exactly 0.8x the rate (truth: BD-PSNR 1.00 dB, BD-rate -20.0 %).
A second check with a test curve of another shape: a few points of JPEG 4:4:4's sweep, against the BD-PSNR of
its whole 100-point sweep (dense against dense, where interpolation hardly matters) as the truth.
"""

import io
import sys

import numpy as np
from PIL import Image

from fitbench.compression.bd import bd_psnr, bd_rate, pareto_front
from fitbench.compression.codecs import JPEG, JPEG444, to_uint8
from fitbench.datasets import load_images

TEST_QUALITIES = ((10, 30, 50, 70), (5, 15, 30, 50, 75), (20, 40, 60, 80, 90), (2, 8, 95))


def cubic_gap(x_anchor, y_anchor, x_test, y_test) -> float:
    """VCEG-M33 as fitbench had it: one cubic per whole curve, integrated over the overlap."""
    low, high = max(x_anchor.min(), x_test.min()), min(x_anchor.max(), x_test.max())
    integrals = [np.diff(np.polyval(np.polyint(np.polyfit(x, y, min(3, len(x) - 1))), [low, high]))[0]
                 for x, y in ((x_anchor, y_anchor), (x_test, y_test))]
    return (integrals[1] - integrals[0]) / (high - low)


def sweep(truth8: np.ndarray, codec=JPEG) -> tuple[np.ndarray, np.ndarray]:
    bpp, psnr = [], []
    for quality in codec.qualities:
        data = codec(quality).encode(Image.fromarray(truth8[..., 0] if truth8.shape[2] == 1 else truth8))
        decoded = np.asarray(Image.open(io.BytesIO(data))).reshape(truth8.shape).astype(np.float64)
        bpp.append(8 * len(data) / (truth8.shape[0] * truth8.shape[1]))
        psnr.append(10 * np.log10(255**2 / np.mean((decoded - truth8) ** 2)))
    return np.array(bpp), np.array(psnr)


def main(size: int) -> None:
    rows, shaped = [], []
    for image in load_images("builtin", size):
        all_bpp, all_psnr = sweep(to_uint8(image.pixels))
        bpp, psnr = pareto_front(all_bpp, all_psnr)
        if image.pixels.shape[2] == 3:  # 4:4:4 differs from 4:2:0 only in colour
            full_bpp, full_psnr = pareto_front(*sweep(to_uint8(image.pixels), JPEG444))
            for qualities in TEST_QUALITIES:
                index = sorted({int(np.argmin(np.abs(full_bpp - np.quantile(full_bpp, q / 100)))) for q in qualities})
                tb, tp = full_bpp[index], full_psnr[index]
                inside = (full_bpp >= tb[0]) & (full_bpp <= tb[-1])  # the dense curve over the same rates
                truth = bd_psnr(bpp, psnr, full_bpp[inside], full_psnr[inside])
                shaped.append((cubic_gap(np.log(bpp), psnr, np.log(tb), tp) - truth, bd_psnr(bpp, psnr, tb, tp) - truth,
                               len(index)))
                print(f"{image.name:10s} 4:4:4 at {len(index)} points: BD-PSNR dense {truth:.3f}, cubic "
                      f"{shaped[-1][0] + truth:.3f}, pchip-gap {shaped[-1][1] + truth:.3f} dB")
        for qualities in TEST_QUALITIES:
            index = sorted({int(np.argmin(np.abs(bpp - all_bpp[q - 1]))) for q in qualities})
            tb, tp = bpp[index], psnr[index]
            old_psnr = cubic_gap(np.log(bpp), psnr, np.log(tb), tp + 1)
            old_rate = (np.exp(cubic_gap(psnr, np.log(bpp), tp, np.log(tb * 0.8))) - 1) * 100
            rows.append((old_psnr, bd_psnr(bpp, psnr, tb, tp + 1), old_rate, bd_rate(bpp, psnr, tb * 0.8, tp)))
            print(f"{image.name:10s} q={qualities}: BD-PSNR cubic {rows[-1][0]:.3f} pchip-gap {rows[-1][1]:.3f} dB; "
                  f"BD-rate cubic {rows[-1][2]:.2f} pchip-gap {rows[-1][3]:.2f} %")
    rows = np.array(rows)
    print(f"BD-PSNR (truth 1.00): cubic {rows[:, 0].min():.3f}..{rows[:, 0].max():.3f}, "
          f"pchip-gap {rows[:, 1].min():.3f}..{rows[:, 1].max():.3f} dB")
    print(f"BD-rate (truth -20.0): cubic {rows[:, 2].min():.2f}..{rows[:, 2].max():.2f}, "
          f"pchip-gap {rows[:, 3].min():.2f}..{rows[:, 3].max():.2f} %")
    shaped = np.array(shaped)
    for label, keep in (("4-5 points", shaped[:, 2] >= 4), ("3 points", shaped[:, 2] == 3)):
        errors = np.abs(shaped[keep, :2])
        print(f"JPEG 4:4:4 at {label} against 4:2:0, |error| of BD-PSNR against the dense sweeps' value: cubic mean "
              f"{errors[:, 0].mean():.3f} max {errors[:, 0].max():.3f} dB, pchip-gap mean {errors[:, 1].mean():.3f} "
              f"max {errors[:, 1].max():.3f} dB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 128)
