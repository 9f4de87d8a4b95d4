"""Speed suite: the reference minibatch loop, the plain full-batch eager loop and the engine's fastest path,
side by side in one process, against the matmul peak measured in that same process; plus batched vs one by one.

Writes OUT/speed/breakdown.csv and breakdown.png (the step breakdown, bench/step_breakdown.py), and
OUT/speed/speed.csv (one row per representation and loop, and the batching rows) and speed.png.
"""

from __future__ import annotations

import copy
import dataclasses
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from fitbench import representations

from .. import metrics
from ..batched import can_batch, fit_batch
from ..engine import (FitConfig, PixelLoss, TrainingClock, capturable_config, fit_image, reconstruct,
                      resolve_device, train, training_pixels)
from ..flops import training_step_flops
from ..hardware import heap_in_use, matmul_peak, memory_bandwidth
from ..options import SuiteOptions, option
from ..planning import load_preset_images
from ..precision import choose_precision, native_bf16
from ..presets import Preset, get_preset
from ..protocol import coordinate_grid, make_split, training_grid
from ..step_breakdown import PARTS, StepBreakdown, breakdown
from . import register_suite

DEFAULT_REPRESENTATIONS = ("siren", "fourier_features", "relu_mlp")  # the loops' standard comparison
SPEED_PARTS = ("breakdown", "loops", "batching")
REFERENCE_BATCH = 256  # pixels per minibatch in the original image-fitting scripts


@dataclass(frozen=True)
class SpeedPreset(Preset):
    reference_seconds: float = 60.0  # time budget of the reference loop
    eval_every: int = 10  # full-batch steps between test-PSNR checks (not timed)
    target_psnr: float = 20.0  # the fixed test PSNR whose time to reach is compared
    batch_images: int = 16  # the batched comparison: this many images of batch_size^2, fitted both ways
    batch_size: int = 128
    batch_steps: int = 30


SPEED_PRESETS = {p.name: p for p in [
    SpeedPreset("smoke", "CI: tiny images and networks, seconds", size=32, steps=20, seeds=1, image_set="builtin",
                max_images=1, size_class="tiny",
                reference_seconds=1.0, eval_every=5, target_psnr=8.0, batch_images=3, batch_size=16, batch_steps=5),
    SpeedPreset("standard", "512^2 image (65,536 training pixels), width 256, depth 3: the size of docs/speed.md's "
                "figures",
                size=512, steps=100, seeds=1, image_set="builtin", max_images=1,
                overrides={"siren": {"depth": 3}},  # the others' defaults are 3 hidden x 256 already
                reference_seconds=60.0,
                eval_every=10, target_psnr=20.0),
]}


@dataclass
class SpeedRow:
    representation: str
    loop: str  # reference | eager | fast | sequential xN | batched xN
    device: str
    precision: str
    pixels: int  # training pixels per model
    steps: int
    train_seconds: float  # timed training, test evaluations and compilation excluded
    warmup_seconds: float  # the first step (compilation for the fast path)
    steps_per_second: float
    gflops: float
    peak_percent: float  # of the matmul peak at this precision, measured in this process
    final_psnr: float  # test PSNR at the end
    seconds_to_target: float | None  # None: not reached within the budget
    peak_memory_mb: float
    notes: str = ""


class PeakMemory:
    """Peak memory above the start of a `with` block: CUDA allocator stats; on CPU the malloc heap in use
    (hardware.heap_in_use), sampled, or the resident set size where the C library cannot report it. RSS alone
    would read near zero once freed memory is kept in the process (hardware.keep_freed_memory)."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    @staticmethod
    def _cpu_bytes() -> int:
        in_use = heap_in_use()
        if in_use is not None:
            return in_use
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            self.base = self.peak = self._cpu_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._cpu_bytes())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
            self._thread.join()
        self.megabytes = max(self.peak - self.base, 0) / 2**20


def settings_for(name: str, preset: SpeedPreset, options: SuiteOptions) -> tuple[dict, float]:
    """Config overrides of `name` (the preset's, then --set) and its learning rate."""
    overrides = {**preset.overrides_for(name), **options.settings.get(name, {})}
    return overrides, representations.make_config(name, **overrides).lr


def test_psnr(model, image: np.ndarray, split, device) -> float:
    full = reconstruct(model, coordinate_grid(*image.shape[:2]), image.shape, device, 1 << 16)
    return metrics.psnr(image[split.test], full[split.test])


def reference_loop(model, image, split, lr, device, preset: SpeedPreset) -> tuple[int, TrainingClock, float]:
    """The original scripts' style: shuffled minibatches of 256 pixels from a DataLoader, test PSNR per epoch."""
    coords, values = training_pixels(image, split, torch.device("cpu"))
    loader = DataLoader(TensorDataset(coords, values), batch_size=REFERENCE_BATCH, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    clock, steps, first = TrainingClock(target=preset.target_psnr), 0, 0.0
    while clock.elapsed() < preset.reference_seconds:
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.mean((model(x.to(device)) - y.to(device)) ** 2)
            loss.backward()
            optimizer.step()
            steps += 1
            first = first or clock.elapsed()
        clock.check(lambda: test_psnr(model, image, split, device))
        if clock.reached is not None:
            break
    return steps, clock, first


def full_batch_loop(model, image, split, config: FitConfig, preset: SpeedPreset) -> tuple[int, TrainingClock, float]:
    """The engine's loop under `config`, with a test-PSNR check every eval_every steps (not timed)."""
    device = torch.device(config.device)
    coords, values = training_pixels(image, split, device)
    clock = TrainingClock(target=preset.target_psnr)
    config = capturable_config(config, model)

    losses = PixelLoss(model, coords, values, config)

    def on_step(step, loss):
        clock.check(lambda: test_psnr(model, image, split, device))

    log = train(losses, [p for p in model.parameters() if p.requires_grad], 1, config, on_step)
    return log.steps_done[0], clock, log.warmup_seconds


def loop_configs(name: str, preset: SpeedPreset, lr: float, device: str, precision: str, compile: bool
                 ) -> tuple[FitConfig, FitConfig]:
    """The eager loop (fp32, Adam one parameter at a time, no compilation, no CUDA graphs: the engine before its
    fast paths) and
    the fast path (fused Adam, `precision` as fitting's --precision would choose it, torch.compile if asked).
    The time-to-target check runs at each host sync, so both sync at every check (CUDA's default of every 200
    steps would put every check after a 100-step preset's last step)."""
    checks = dict(log_every=preset.eval_every, sync_every=preset.eval_every)
    chosen = choose_precision(precision, device, name).precision
    return (FitConfig(preset.steps, lr, device, **checks, fused_adam=False, cuda_graphs=False),
            FitConfig(preset.steps, lr, device, **checks, precision=chosen, compile=compile))


def measure(name, loop, model, run: Callable, pixels: int, device, precision, notes="") -> SpeedRow:
    flops = training_step_flops(model, pixels)
    with PeakMemory(device) as memory:
        steps, clock, warmup = run()
    seconds = clock.elapsed()
    steady = max(seconds - warmup, 1e-9)
    rate = (steps - 1) / steady if steps > 1 else 0.0
    gflops = rate * flops / 1e9
    return SpeedRow(name, loop, str(device), precision, pixels, steps, seconds, warmup, rate, gflops,
                    100 * gflops / matmul_peak(str(device), precision).gflops, clock.psnr, clock.reached,
                    memory.megabytes, notes)


def compare_loops(name: str, image: np.ndarray, preset: SpeedPreset, options: SuiteOptions, device) -> list[SpeedRow]:
    split = make_split("alternate", *image.shape[:2])
    overrides, lr = settings_for(name, preset, options)
    torch.manual_seed(0)
    initial = representations.build(name, out_features=image.shape[2], training_grid=training_grid(
        "alternate", *image.shape[:2]), **overrides).to(device)
    pixels = int(split.train.sum())
    own: SpeedOptions = options.own_or(SpeedOptions)
    eager, fast = loop_configs(name, preset, lr, str(device), own.speed_precision, not own.no_compile)
    reference_pixels = REFERENCE_BATCH
    rows = [
        measure(name, "reference", initial, lambda m=copy.deepcopy(initial): reference_loop(m, image, split, lr, device, preset),
                reference_pixels, device, "fp32", f"minibatches of {REFERENCE_BATCH} pixels"),
        measure(name, "eager", initial, lambda m=copy.deepcopy(initial): full_batch_loop(m, image, split, eager, preset),
                pixels, device, "fp32"),
        measure(name, "fast", initial, lambda m=copy.deepcopy(initial): full_batch_loop(m, image, split, fast, preset),
                pixels, device, fast.precision, f"compile={fast.compile}"),
    ]
    return rows


def explain_steps(name: str, image: np.ndarray, preset: SpeedPreset, options: SuiteOptions, device
                  ) -> list[StepBreakdown]:
    """The step breakdown (bench/step_breakdown.py) of the plain loop and of the fast path, on one image."""
    split = make_split("alternate", *image.shape[:2])
    overrides, lr = settings_for(name, preset, options)
    coords, values = training_pixels(image, split, device)
    own: SpeedOptions = options.own_or(SpeedOptions)
    plain, fast = loop_configs(name, preset, lr, str(device), own.speed_precision, not own.no_compile)
    rows = []
    for loop, config in (("eager", plain), ("fast", fast)):
        torch.manual_seed(0)
        model = representations.build(name, out_features=image.shape[2], training_grid=training_grid(
            "alternate", *image.shape[:2]), **overrides).to(device)
        rows.append(breakdown(name, loop, model, coords, values, config))
    return rows


def compare_batching(name: str, images: list[np.ndarray], preset: SpeedPreset, options, device) -> list[SpeedRow]:
    """The same fits one after another and as one batch: steps/s of the whole set, final PSNR averaged."""
    split = make_split("alternate", *images[0].shape[:2])
    overrides, lr = settings_for(name, preset, options)
    config = FitConfig(preset.batch_steps, lr, str(device))
    models = []
    for seed in range(len(images)):
        torch.manual_seed(seed)
        models.append(representations.build(name, out_features=images[0].shape[2], training_grid=training_grid(
            "alternate", *images[0].shape[:2]), **overrides))
    pixels = int(split.train.sum())

    def row(loop, fit):
        with PeakMemory(device) as memory:
            start = time.perf_counter()
            outcomes = fit()
            seconds = time.perf_counter() - start
        flops = len(images) * training_step_flops(models[0], pixels) * preset.batch_steps
        psnr = float(np.mean([metrics.psnr(i[split.test], o.reconstruction[split.test]) for i, o in zip(images, outcomes)]))
        return SpeedRow(name, loop, str(device), "fp32", pixels, preset.batch_steps, seconds, 0.0,
                        len(images) * preset.batch_steps / seconds, flops / seconds / 1e9,
                        100 * flops / seconds / 1e9 / matmul_peak(str(device), "fp32").gflops, psnr, None,
                        memory.megabytes, f"{len(images)} images of {images[0].shape[0]}^2, model-steps/s")

    return [
        row(f"sequential x{len(images)}", lambda: [fit_image(copy.deepcopy(m), i, split, config) for m, i in zip(models, images)]),
        row(f"batched x{len(images)}", lambda: fit_batch([copy.deepcopy(m) for m in models], images, split, config)),
    ]


@dataclass(frozen=True)
class SpeedOptions:
    speed_parts: str = option(",".join(SPEED_PARTS), "what to measure: breakdown (where each step's time goes, every "
                              "representation), loops (reference vs eager vs fast, to a target PSNR), batching "
                              "(batched vs one by one); default: all three", metavar="PART[,PART...]")
    speed_precision: str = option("auto", "precision of the fast path (default auto: bf16 where the device has it "
                                  "natively and its measured cost is small, as fitting's --precision auto)",
                                  choices=("auto", "fp32", "bf16"))
    no_compile: bool = option(False, "leave torch.compile out of the fast path")

    def __post_init__(self) -> None:
        speed_parts(self.speed_parts)


def speed_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(parts) - set(SPEED_PARTS))
    if unknown or not parts:
        raise ValueError(f"--speed-parts {text!r}: choose from {', '.join(SPEED_PARTS)} (comma-separated)")
    return parts


@register_suite("speed", "where each step's time goes (matmul/elementwise/loss/optimiser vs the roofline); reference "
                "vs eager vs fastest loop; batched vs one by one",
                common=("preset", "representations", "settings", "images", "data", "steps", "device"),
                options=SpeedOptions, presets=SPEED_PRESETS, default_preset="standard")
def run_speed(options: SuiteOptions) -> int:
    preset = get_preset(options.preset, SPEED_PRESETS)
    if options.steps:
        preset = dataclasses.replace(preset, steps=options.steps)
    parts = speed_parts(options.own_or(SpeedOptions).speed_parts)
    device = resolve_device(options.device)
    _, images = load_preset_images(options, preset)
    every = representations.list_representations()
    for name in options.representations or []:
        representations.get_entry(name)  # raises with the valid names
    folder = options.suite_dir("speed")
    peak, bf16_peak = matmul_peak(str(device), "fp32").gflops, matmul_peak(str(device), "bf16").gflops
    bandwidth = memory_bandwidth(str(device)).gbytes_per_second
    if "breakdown" in parts:
        steps: list[StepBreakdown] = []
        for name in tqdm(options.representations or every, desc="step breakdown", unit="rep", file=sys.stderr,
                         disable=None):
            steps += explain_steps(name, images[0].pixels, preset, options, device)
            table = write_table(steps, folder, "breakdown.csv")  # after each: a run cut short keeps what it measured
        breakdown_chart(table, folder / "breakdown.png", peak, bandwidth)
        print_table(table, ["representation", "loop", "precision", "compile", "step_ms", *(f"{p}_ms" for p in PARTS),
                            "matmul_peak_percent", "bandwidth_percent", "step_peak_percent"])
    rows: list[SpeedRow] = []
    names = options.representations or [n for n in DEFAULT_REPRESENTATIONS if n in every]
    if "loops" in parts:
        for name in tqdm(names, desc="loops", unit="rep", file=sys.stderr, disable=None):
            rows += compare_loops(name, images[0].pixels, preset, options, device)
            write_table(rows, folder, "speed.csv")
    if "batching" in parts and can_batch(names[0]):
        batch_options = SuiteOptions("speed", size=preset.batch_size, max_images=preset.batch_images,
                                     images=options.images, data_root=options.data_root)
        _, small = load_preset_images(batch_options, preset)
        small = [s.pixels for s in small if s.pixels.shape == small[0].pixels.shape]  # one batch: one shape
        small = (small * preset.batch_images)[: preset.batch_images]  # repeat a short image set up to the count
        rows += compare_batching(names[0], small, preset, options, device)
    if rows:
        table = write_table(rows, folder, "speed.csv")
        bar_chart(table, folder / "speed.png", peak)
        print_table(table, ["representation", "loop", "precision", "steps_per_second", "gflops", "peak_percent",
                            "final_psnr", "seconds_to_target", "warmup_seconds", "peak_memory_mb"])
    print(f"measured in this process: matmul peak {peak:.0f} GFLOP/s fp32, {bf16_peak:.0f} bf16 (native bf16: "
          f"{native_bf16(str(device)) or 'none'}); memory bandwidth {bandwidth:.1f} GB/s; "
          f"target PSNR {preset.target_psnr} dB")
    print(f"results: {folder}/" + ", ".join(sorted(p.name for p in folder.glob("*.*") if not p.name.startswith("."))))
    return 0


def print_table(table: pd.DataFrame, columns: list[str]) -> None:
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(table[columns].round(2).to_string(index=False))


def write_table(rows: list, folder: Path, name: str) -> pd.DataFrame:
    table = pd.DataFrame([asdict(r) for r in rows])
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / name, index=False)
    return table


def bar_chart(table: pd.DataFrame, path: Path, peak: float) -> None:
    from ..figures import plt

    loops = table[table["loop"].isin(["reference", "eager", "fast"])]
    names = list(dict.fromkeys(loops["representation"]))
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    width = 0.27
    for i, loop in enumerate(["reference", "eager", "fast"]):
        part = loops[loops["loop"] == loop].set_index("representation").reindex(names)
        xs = np.arange(len(names)) + (i - 1) * width
        axes[0].bar(xs, part["gflops"], width, label=loop)
        axes[1].bar(xs, part["seconds_to_target"].fillna(0), width, label=loop)
    axes[0].axhline(peak, color="k", ls="--", lw=1, label="fp32 matmul peak")
    axes[0].set_ylabel("achieved matmul GFLOP/s")
    axes[1].set_ylabel("seconds to target test PSNR (0: not reached)")
    for ax in axes:
        ax.set_xticks(np.arange(len(names)), names)
        ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


PART_COLOURS = {"matmul": "tab:blue", "elementwise": "tab:orange", "loss": "tab:green", "optimizer": "tab:red",
                "other": "tab:gray"}


def breakdown_chart(table: pd.DataFrame, path: Path, peak: float, bandwidth: float) -> None:
    """Left: each step's milliseconds by part (eager and fast, side by side). Right: the roofline, attained
    GFLOP/s of each matmul part against the peak and of the whole step as peak-equivalent, with the elementwise
    part's attained bandwidth as a fraction of the measured one."""
    from ..figures import plt

    labels = [f"{r.representation} ({r.loop})" for r in table.itertuples()]
    figure, (bars, roof) = plt.subplots(1, 2, figsize=(14, max(4, 0.32 * len(table) + 1.5)), layout="constrained",
                                        gridspec_kw={"width_ratios": [3, 2]})
    left = np.zeros(len(table))
    for part in PARTS:
        shares = 100 * table[f"{part}_ms"].to_numpy() / table["step_ms"].clip(lower=1e-9).to_numpy()
        bars.barh(labels, shares, left=left, color=PART_COLOURS[part], label=part)
        left += shares
    bars.invert_yaxis()
    bars.set_xlim(0, 135)
    bars.set_xlabel("% of the training step's time")
    bars.legend(fontsize=8, loc="lower right")
    for row, label, end in zip(table.itertuples(), labels, left):
        bars.text(end + 1, label, f"{row.step_ms:.1f} ms\n{row.step_peak_percent:.0f}% of peak", va="center",
                  fontsize=6)
    x = np.arange(len(table))
    roof.scatter(table["matmul_peak_percent"], x, marker="o", label="matmul part, % of matmul peak")
    roof.scatter(table["bandwidth_percent"], x, marker="s", label="elementwise part, % of bandwidth")
    roof.scatter(table["step_peak_percent"], x, marker="x", color="k", label="whole step, % of matmul peak")
    roof.axvline(100, color="k", lw=1, ls="--", label="ceiling (measured peak / bandwidth)")
    roof.set_yticks(x, labels, fontsize=7)
    roof.invert_yaxis()
    roof.set_xlabel(f"% of roofline (peak {peak:.0f} GFLOP/s, bandwidth {bandwidth:.1f} GB/s)")
    roof.legend(fontsize=7, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
