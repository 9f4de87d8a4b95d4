"""The FFN paper's 2D image-regression table, the settings it used per image set, and measured beside published.

Published: Tancik et al. 2020, "Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional
Domains" (NeurIPS), 2D image regression: test PSNR in dB, mean ± std over the 16 test images of each set, on
`y[1::2, 1::2]` of 512² images after 2000 full-batch Adam steps on `y[::2, ::2]` with a 4-layer × 256 ReLU MLP.
The figures are those of the paper's results table (2D image regression rows) and the settings those of the paper
and its notebook `2d_image_regression.ipynb`, as docs/repro.md lists them. `python run_bench.py --suite repro`
prints the comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

SOURCE = ("Tancik et al. 2020, Fourier Features Let Networks Learn High Frequency Functions in Low Dimensional "
          "Domains (NeurIPS), 2D image regression; figures from the paper's results table")
TOLERANCE_DB = 0.5  # a reproduction within this of the published mean counts as matching


@dataclass(frozen=True)
class PaperSetting:
    """The paper's protocol (the `paper` fitting preset is built from it)."""

    size: int = 512  # image side
    steps: int = 2000  # full-batch Adam steps
    images: int = 16  # test images per set
    protocol: str = "alternate"  # train on y[::2, ::2], test on y[1::2, 1::2]
    precision: str = "fp32"


PAPER = PaperSetting()

_NETWORK = {"width": 256, "depth": 3}  # "4 layers x 256": three hidden layers and the output layer
# Each mapping's settings per kind of image. The paper tuned sigma and s on separate 16 images of each kind; the
# no-mapping network takes lr 1e-2 on natural images and 1e-3 on text, every other one 1e-3.
SETTINGS_BY_KIND: dict[str, dict[str, dict[str, Any]]] = {
    kind: {
        "relu_mlp": {**_NETWORK, "lr": no_mapping_lr},
        "basic": {**_NETWORK, "lr": 1e-3},
        "positional": {**_NETWORK, "lr": 1e-3, "num_frequencies": 128, "max_log2": s},
        "fourier_features": {**_NETWORK, "lr": 1e-3, "num_features": 256, "sigma": sigma},
    }
    for kind, no_mapping_lr, s, sigma in (("natural", 1e-2, 6.0, 10.0), ("text", 1e-3, 5.0, 14.0))
}
KIND_OF_SET = {"ffn-natural": "natural", "ffn-natural-test": "natural", "ffn-text": "text", "ffn-text-test": "text"}
TEST_SETS = {"natural": "ffn-natural-test", "text": "ffn-text-test"}  # the sets the table reports on
SETTINGS_BY_SET = {name: SETTINGS_BY_KIND[kind] for name, kind in KIND_OF_SET.items()}
MAPPINGS = {"relu_mlp": "no mapping", "basic": "basic", "positional": "positional encoding",
            "fourier_features": "Gaussian"}  # the paper's names, in its column order


@dataclass(frozen=True)
class Published:
    kind: str  # "natural" or "text"
    representation: str
    mean: float
    std: float


PUBLISHED = {
    (p.kind, p.representation): p
    for p in [
        Published("natural", "relu_mlp", 19.32, 2.48), Published("natural", "basic", 21.72, 2.72),
        Published("natural", "positional", 24.95, 3.72), Published("natural", "fourier_features", 25.57, 4.19),
        Published("text", "relu_mlp", 18.40, 2.34), Published("text", "basic", 20.48, 1.96),
        Published("text", "positional", 27.57, 3.07), Published("text", "fourier_features", 30.47, 2.11),
    ]
}


@dataclass(frozen=True)
class Comparison:
    """One representation on one test set: measured over its images beside the published figure (if any)."""

    kind: str
    representation: str
    images: int
    mean: float
    std: float  # over images (each image's mean over seeds), ddof = 0 as numpy's default
    published: Published | None
    deviations: tuple[str, ...]  # how the records differ from the paper's setting; () in its setting

    @property
    def mapping(self) -> str:
        return MAPPINGS.get(self.representation, "not in the FFN paper")

    @property
    def difference(self) -> float | None:
        return None if self.published is None else self.mean - self.published.mean

    @property
    def within_std(self) -> bool | None:
        return None if self.published is None else abs(self.difference) <= self.published.std

    @property
    def within_tolerance(self) -> bool | None:
        return None if self.published is None else abs(self.difference) <= TOLERANCE_DB


def compare(records: Iterable[dict]) -> list[Comparison]:
    """The finished `paper`-preset fits on the two test sets, one row per (set, representation, setting)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        kind = next((k for k, name in TEST_SETS.items() if name == r.get("image_set")), None)
        if kind and r.get("kind") == "representation" and r.get("status") == "ok" and r.get("preset") == "paper":
            setting = (r["size"], r.get("max_steps") or r["steps"], r.get("precision", "fp32"), r["protocol"],
                       r.get("pixels_per_step"), r.get("budget_seconds"), r.get("budget_flops"))
            groups.setdefault((kind, r["representation"], setting), []).append(r)
    rows = []
    for (kind, name, setting), group in groups.items():
        per_image: dict[str, list[float]] = {}
        for r in group:
            per_image.setdefault(r["image"], []).append(r["psnr_test"])
        psnr = np.array([np.mean(values) for values in per_image.values()])
        rows.append(Comparison(kind, name, len(psnr), float(psnr.mean()), float(psnr.std()),
                               PUBLISHED.get((kind, name)), deviations(kind, name, setting, group, len(psnr))))
    order = list(MAPPINGS)
    return sorted(rows, key=lambda c: (c.kind, bool(c.deviations), order.index(c.representation)
                                       if c.representation in order else len(order), c.representation))


def deviations(kind: str, name: str, setting: tuple, group: list[dict], images: int) -> tuple[str, ...]:
    """What keeps these records from being the paper's setting, in words."""
    size, steps, precision, protocol, pixels, seconds, flops = setting
    found = []
    if size != PAPER.size:
        found.append(f"{size}² images (paper {PAPER.size}²)")
    if steps != PAPER.steps:
        found.append(f"{steps} steps (paper {PAPER.steps})")
    if images != PAPER.images:
        found.append(f"{images} of {PAPER.images} images")
    if protocol != PAPER.protocol:
        found.append(f"protocol {protocol}")
    if precision != PAPER.precision:
        found.append(precision)
    for value, what in ((pixels, "pixels per step"), (seconds, "s budget"), (flops, "FLOP budget")):
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            found.append(f"{value:g} {what}")
    for field, paper_value in SETTINGS_BY_KIND[kind].get(name, {}).items():
        used = {r["config"].get(field) for r in group}
        if used != {paper_value}:
            found.append(f"{field} {', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in sorted(used))}"
                         f" (paper {paper_value:g})")
    return tuple(found)


def comparison_markdown(rows: list[Comparison]) -> str:
    """The table: measured beside published, the difference, and whether it is within the paper's std / 0.5 dB."""
    def yes_no(value: bool | None) -> str:
        return "–" if value is None else ("yes" if value else "NO")

    lines = [f"FFN 2D image regression, test PSNR (dB), mean ± std over images. Published: {SOURCE}.", ""]
    if any(row.deviations for row in rows):
        lines += ["**Rows marked NOT THE PAPER'S SETTING are a smoke check of the path, not a reproduction.**", ""]
    header = ("| images | mapping | representation | n | measured | published | difference | within paper std "
              f"| within ±{TOLERANCE_DB:g} dB | setting |")
    lines += [header, "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        published = f"{row.published.mean:.2f} ± {row.published.std:.2f}" if row.published else "–"
        difference = f"{row.difference:+.2f}" if row.published else "–"
        setting = "NOT THE PAPER'S SETTING: " + "; ".join(row.deviations) if row.deviations else "the paper's"
        lines.append(f"| {row.kind} | {row.mapping} | {row.representation} | {row.images} | "
                     f"{row.mean:.2f} ± {row.std:.2f} | {published} | {difference} | {yes_no(row.within_std)} | "
                     f"{yes_no(row.within_tolerance)} | {setting} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Projection:
    """The fitting time of one representation on every test set at the paper's steps, from a short batched fit."""

    representation: str
    step_seconds: float  # one steady step of the whole batch (every image of a set together)
    warmup_seconds: float
    batch: int
    size: int  # image side of the probe (the projection means something at the paper's size only)

    @property
    def seconds(self) -> float:
        batches = math.ceil(PAPER.images / self.batch)  # per set: one batch when every image fits in it
        return len(TEST_SETS) * batches * (self.warmup_seconds + (PAPER.steps - 1) * self.step_seconds)


def project(records: Iterable[dict]) -> list[Projection]:
    """Per representation, from the finished probe fits of one test set: the time of the paper's run of both.
    The text images are fitted at the same size and channels as the natural ones, so one set's steps time both."""
    found: dict[str, Projection] = {}
    for r in records:
        if r.get("kind") == "representation" and r.get("status") == "ok" and r.get("step_seconds"):
            found.setdefault(r["representation"], Projection(r["representation"], r["step_seconds"],
                                                             r.get("warmup_seconds") or 0.0, r.get("batch") or 1,
                                                             r["size"]))
    return sorted(found.values(), key=lambda p: p.representation)
