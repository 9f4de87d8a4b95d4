"""Rate ladders: which sizes of each representation to fit so that its points span the asked bits per pixel.

Each representation declares in its registration the one integer knob that scales it (SIREN's width, an RBF
grid, a Gaussian count; `SizeKnob`, with the settings that follow it). For each target rate the knob is set by
bisection (`representations.knob_for_parameters`) so that the parameter count at the preset's reference bits
per value lands nearest the target; the lower bit-widths of the same fit then fill in lower rates. A rate the
knob cannot reach within its declared range is reported, never fitted at a clamped size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fitbench import representations

TOLERANCE = 1.5  # a rung at the knob's end whose parameter count is further than this factor off is unreachable


@dataclass(frozen=True)
class Ladder:
    representation: str
    sizes: list[dict[str, Any]]  # config overrides (base plus knob), smallest first, no repeats
    unreachable: list[str]  # one line per target rate the knob cannot reach


def ladder(name: str, base: dict[str, Any], channels: int, pixels: int, targets_bpp: tuple[float, ...],
           bits: int) -> Ladder:
    """The sizes of `name` nearest each target rate, at `bits` stored bits per value."""
    knob = representations.get_entry(name).knob
    if knob is None:
        return Ladder(name, [dict(base)], [f"{name} declares no size knob, so it is fitted at one size only"])
    sizes: list[dict[str, Any]] = []
    unreachable = []
    for bpp in targets_bpp:
        target = bpp * pixels / bits
        overrides = representations.knob_for_parameters(name, math.ceil(target), channels, base)
        count = representations.parameter_count(name, channels, **overrides)
        value = overrides[knob.field]
        if value in (knob.low, knob.high) and not target / TOLERANCE <= count <= target * TOLERANCE:
            unreachable.append(
                f"{name}: {bpp:g} bpp needs about {target:,.0f} parameters at {bits} bits, but its size knob "
                f"{knob.field} in {knob.low}..{knob.high} gives {count:,} at {knob.field}={value} (with "
                f"{_settings(base)}); that rate is skipped")
        elif overrides not in sizes:
            sizes.append(overrides)
    sizes.sort(key=lambda o: o[knob.field])
    return Ladder(name, sizes, unreachable)


def _settings(base: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(base.items())) or "its defaults"
