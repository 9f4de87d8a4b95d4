"""Named sizes of a suite: how big the images and networks are and how long fits run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    size: int  # image side after centre crop and resize
    steps: int  # full-batch Adam steps per fit
    seeds: int
    image_set: str
    max_images: int | None = None
    # Config overrides: "*" applies to every representation that has the field, a name to that one only.
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def overrides_for(self, representation: str, config_cls: type) -> dict[str, Any]:
        fields = {f.name for f in dataclasses.fields(config_cls)}
        common = {k: v for k, v in self.overrides.get("*", {}).items() if k in fields}
        return {**common, **self.overrides.get(representation, {})}


class UnknownPresetError(ValueError):
    pass


FITTING_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "smoke",
            "tests and CI: tiny images and networks, the whole suite in seconds",
            size=32,
            steps=100,
            seeds=1,
            image_set="builtin",
            max_images=2,
            overrides={"*": {"width": 32, "depth": 2, "num_frequencies": 16, "num_features": 16}, "rbf": {"grid": 12},
                       "fnet": {"width": 4, "depth": 3}},
        ),
        Preset(
            "standard",
            "the default: every representation on the built-in images at 256^2, 3x128 networks, ~10 min on 2 cores",
            size=256,
            steps=300,
            seeds=1,
            image_set="builtin",
            overrides={"*": {"width": 128, "depth": 3}, "siren": {"lr": 3e-4}},
        ),
        Preset(
            "paper",
            "the FFN protocol: 512^2 images, 256^2 training grid, 2000 full-batch steps, 4x256 networks (GPU-scale)",
            size=512,
            steps=2000,
            seeds=1,
            image_set="ffn-natural",
            overrides={"*": {"width": 256, "depth": 3}},
        ),
    ]
}


def get_preset(name: str, presets: Mapping[str, Preset] = FITTING_PRESETS) -> Preset:
    try:
        return presets[name]
    except KeyError:
        raise UnknownPresetError(f"unknown preset {name!r}; choose from: {', '.join(presets)}") from None
