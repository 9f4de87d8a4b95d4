"""What a compression-sized fit costs, behind two settings of the compression suite (one CPU thread; 4096 random
pixels a step in the standard preset):

    python experiments/compression_fit_cost.py threads      # steady ms a step with 1 and 2 intra-op threads
    python experiments/compression_fit_cost.py pixels       # PSNR and CPU seconds by steps and pixels per step

Both at 256^2. `pixels` fits a tuning image (FFN natural 01, from --data-root or $FITBENCH_DATA_ROOT; never an
image the presets report on) with SIREN and the ReLU MLP sized for 0.3 bpp at 8 bits, with the recipe's cosine
schedule and best weights.
"""

from __future__ import annotations

import dataclasses
import sys
import time

import torch

from fitbench import metrics, representations
from fitbench.datasets import load_images
from fitbench.engine import FitConfig, fit_image
from fitbench.protocol import make_split

SIDE = 256


def sized(name: str, bpp: float) -> dict:
    base = representations.sized_overrides(name, "standard")
    return representations.knob_for_parameters(name, int(bpp * SIDE**2 / 8), 3, base)


def threads() -> None:
    image = load_images("builtin", SIDE, limit=2)[1].pixels  # astronaut
    for name in representations.list_representations():
        settings = sized(name, 0.5)
        for count in (1, 2, 1, 2):  # interleaved, so both see the same machine load
            torch.set_num_threads(count)
            model = representations.build(name, 3, **settings)
            outcome = fit_image(model, image, make_split("full", SIDE, SIDE),
                                FitConfig(30, model.config.lr, pixels_per_step=4096, curve=False))
            print(f"{name:18s} {representations.count_parameters(model):6d} params  {count} thread(s): "
                  f"{outcome.step_seconds * 1e3:7.1f} ms/step", flush=True)


def pixels() -> None:
    torch.set_num_threads(1)
    image = load_images("ffn-natural", SIDE, limit=2)[1].pixels
    for name in ("siren", "relu_mlp"):
        settings = {**sized(name, 0.3), "schedule": "cosine"}
        for steps, per_step in ((500, 4096), (500, 16384), (500, None), (1000, 4096)):
            torch.manual_seed(0)
            model = representations.build(name, 3, **settings)
            fit = dataclasses.replace(FitConfig.for_representation(model.config, steps, pixels_per_step=per_step),
                                      keep_best=True, curve=False)
            cpu = time.process_time()
            outcome = fit_image(model, image, make_split("full", SIDE, SIDE), fit)
            print(f"{name:9s} {representations.count_parameters(model):5d} params, {steps} steps of "
                  f"{per_step or SIDE**2} pixels: {metrics.psnr(image, outcome.reconstruction):.2f} dB, "
                  f"{time.process_time() - cpu:.1f} s CPU", flush=True)


if __name__ == "__main__":
    {"threads": threads, "pixels": pixels}[sys.argv[1]]()
