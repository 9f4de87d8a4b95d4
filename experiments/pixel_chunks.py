"""Whole-batch steps against steps in pixel chunks, the matmul ceiling at the layers' own shapes, and batched
fitting of 4 RGB images at 256^2 (the standard fitting preset) with and without chunks.

    python experiments/pixel_chunks.py [--pixels 65536] [--rounds 3] [--reps siren,relu_mlp,...] [--allocator glibc]

The two ways of stepping are timed in alternation (A B A B ...), best of `rounds`, so that a shared machine's
drifting speed falls on both alike; the ratio is what to read, not the milliseconds. Then torch.mm at the shapes
a width-256 layer multiplies in a chunk and in the whole batch, against the 2048^2 peak the speed suite uses.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from fitbench import representations as R
from fitbench import engine
from fitbench.batched import time_batching
from fitbench.protocol import make_split
from fitbench.engine import FitConfig, PixelLoss, make_optimizer, make_step, seconds_per_step
from fitbench.hardware import matmul_peak

CHUNK = 4096  # pixels per pass in the chunked steps
SPEED_OVERRIDES = {"siren": {"depth": 3}}  # the speed suite's standard preset


def step_of(name: str, coords, values, chunk: int | None):
    torch.manual_seed(0)
    model = R.build(name, out_features=3, **SPEED_OVERRIDES.get(name, {}))
    config = FitConfig(steps=1, lr=R.make_config(name).lr, pixel_chunk=chunk)
    return make_step(PixelLoss(model, coords, values, config),
                     make_optimizer([p for p in model.parameters() if p.requires_grad], config), config)


def mm_gflops(m: int, k: int, n: int, repeats: int = 5) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pixels", type=int, default=65536)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", default="siren,relu_mlp,fourier_features,finer")
    parser.add_argument("--allocator", choices=("keep", "glibc"), default="keep",
                        help="keep: the engine's allocator setting (hardware.keep_freed_memory); glibc: its defaults, "
                        "which unmap every block above 32 MB when freed")
    args = parser.parse_args()
    if args.allocator == "glibc":
        engine.keep_freed_memory = lambda: False
    print(f"allocator: {args.allocator}")
    coords, values = torch.rand(args.pixels, 2), torch.rand(args.pixels, 3)
    device = torch.device("cpu")
    print(f"{args.pixels} training pixels, chunks of {CHUNK}; best of {args.rounds} alternating rounds")
    for name in args.reps.split(","):
        whole, chunked = step_of(name, coords, values, None), step_of(name, coords, values, CHUNK)
        best = {"whole": float("inf"), "chunks": float("inf")}
        for _ in range(args.rounds):
            best["whole"] = min(best["whole"], seconds_per_step(whole, device, 2))
            best["chunks"] = min(best["chunks"], seconds_per_step(chunked, device, 2))
        print(f"{name:18s} whole {1000 * best['whole']:7.0f} ms  chunks {1000 * best['chunks']:7.0f} ms  "
              f"-> {best['whole'] / best['chunks']:.2f}x")
    peak = matmul_peak("cpu", "fp32").gflops
    print(f"matmul peak (2048^2): {peak:.0f} GFLOP/s")
    for label, (m, k, n) in {"layer forward, chunk": (CHUNK, 256, 256),
                             "layer forward, whole": (args.pixels, 256, 256),
                             "weight gradient, chunk": (256, CHUNK, 256),
                             "head forward (256 -> 3), whole": (args.pixels, 256, 3)}.items():
        gflops = mm_gflops(m, k, n)
        print(f"  mm {m}x{k} @ {k}x{n} ({label}): {gflops:.0f} GFLOP/s = {100 * gflops / peak:.0f}% of peak")
    print("batched fitting, 4 RGB images at 256^2, standard size class (batch.time_batching, 3 steps each way):")
    images = [np.random.default_rng(i).random((256, 256, 3)).astype(np.float32) for i in range(4)]
    split = make_split("alternate", 256, 256)
    for name in args.reps.split(","):
        models = [R.build(name, out_features=3, **R.sized_overrides(name, "standard")) for _ in range(4)]
        for label, chunk in (("one pass", None), ("chunks", CHUNK)):
            config = FitConfig(steps=1, lr=R.make_config(name).lr, pixel_chunk=chunk)
            print(f"  {name:18s} {label:8s} {time_batching(models, images, split, config).describe()}")


if __name__ == "__main__":
    main()
