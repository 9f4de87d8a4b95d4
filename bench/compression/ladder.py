"""Rate ladders: which sizes of each representation to fit so that its points span a range of bits per pixel.

A representation's size is one integer knob (SIREN's width, the RBF grid, ...). For each target rate the knob is
chosen by bisection so that the parameter count at a reference 16 bits per value lands nearest the target;
lower bit-widths of the same fit then fill in the lower rates. Representations not in `SIZE_KNOBS` scale
whichever of `width`, `grid` or `num_features` their config has.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch

from fitbench import representations

REFERENCE_BITS = 16  # a ladder rung is sized for fp16 weights; q8, q6, ... of the same fit go lower


@dataclass(frozen=True)
class SizeKnob:
    overrides: Callable[[int], dict[str, Any]]  # knob value -> config overrides
    low: int
    high: int


SIZE_KNOBS: dict[str, SizeKnob] = {
    "siren": SizeKnob(lambda s: {"width": s}, 2, 512),
    "relu_mlp": SizeKnob(lambda s: {"width": s}, 2, 512),
    # the encoding's size sets the first layer's fan-in, so it shrinks with the width
    "fourier_features": SizeKnob(lambda s: {"width": s, "num_features": max(s // 2, 1)}, 2, 512),
    "positional": SizeKnob(lambda s: {"width": s, "num_frequencies": max(s // 4, 1)}, 2, 512),
    "rbf": SizeKnob(lambda s: {"grid": s}, 2, 512),
    "fnet": SizeKnob(lambda s: {"width": s}, 1, 10),  # 2^width terms per layer
}
GENERIC_FIELDS = ("width", "grid", "num_features")


def size_knob(name: str) -> SizeKnob | None:
    if name in SIZE_KNOBS:
        return SIZE_KNOBS[name]
    fields = {f.name for f in dataclasses.fields(representations.get_entry(name).config_cls)}
    field = next((f for f in GENERIC_FIELDS if f in fields), None)
    return SizeKnob(lambda s: {field: s}, 1, 512) if field else None


def parameter_count(name: str, channels: int, overrides: dict[str, Any]) -> int:
    try:  # no allocation where the representation supports the meta device
        with torch.device("meta"):
            return representations.count_parameters(representations.build(name, channels, **overrides))
    except Exception:  # noqa: BLE001 - fall back to a real (small) build
        return representations.count_parameters(representations.build(name, channels, **overrides))


def ladder(name: str, base: dict[str, Any], channels: int, pixels: int, targets_bpp: tuple[float, ...]
           ) -> list[dict[str, Any]]:
    """Config overrides (base plus knob) nearest each target rate, without repeats, smallest first."""
    knob = size_knob(name)
    if knob is None:
        return [dict(base)]
    count = lambda s: parameter_count(name, channels, {**base, **knob.overrides(s)})  # noqa: E731
    rungs: list[int] = []
    for bpp in targets_bpp:
        target = bpp * pixels / REFERENCE_BITS
        low, high = knob.low, knob.high
        while low < high:  # smallest knob value with count >= target
            middle = (low + high) // 2
            low, high = (middle + 1, high) if count(middle) < target else (low, middle)
        best = min({max(low - 1, knob.low), low}, key=lambda s: abs(count(s) - target))
        if best not in rungs:
            rungs.append(best)
    return [{**base, **knob.overrides(s)} for s in sorted(rungs)]
