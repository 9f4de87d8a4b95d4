"""Name -> representation, in the style of timm's model registry.

A representation is a `torch.nn.Module` mapping coordinates (N, 2) in [0, 1)^2 (x = column / W, y = row / H,
the FFN convention) to values (N, C) nominally in [0, 1]. Each one is registered with a typed config whose
defaults come from its source, plus what the suites need to know about it (its size knob, its sizes for small
and laptop-sized presets, its tuning search space, its source); `build(name, out_features=C, **overrides)`
makes one. Adding one takes only its own file: the suites, the streams and the CLI find every representation here.
A few places name particular ones on purpose (a rename must follow them): the speed suite's default comparison
(bench/suites/speed.py), the FFN paper's four mappings (bench/repro.py, the repro suite), the generative models
built on `rbf` and `fnet` (bench/generative/models.py) and the fuzzer's streams (tests/support/fuzz.py).

Settings that are really a function of the image follow the grid of pixels a fit trains on (`TrainingGrid`):
`build(name, training_grid=TrainingGrid(64, 64), ...)` derives them (a config's `follow_grid`), so one setting serves a
128^2 and a 512^2 image. A frequency given relative to the grid (`siren.omega_0_nyquist`, in units of the grid's
Nyquist frequency) sets its absolute sibling (`omega_0`, radians or cycles per image); `FOLLOWS` names the pairs.
The built model's config holds both, and only the absolute values decide the function (`model_settings`), so a
stream never needs the grid to decode.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping

import torch
from torch import nn

from ..engine import SCHEDULES, Schedule  # noqa: F401  (SCHEDULES: exported by fitbench.representations)
from ..registry import Registry


class ConfigError(ValueError):
    """A setting outside its valid range; `make_config` turns it into one line naming the representation."""

    def __init__(self, field_name: str, rule: str):
        super().__init__(f"{field_name}: must be {rule}")
        self.field_name, self.rule = field_name, rule


def require(condition: bool, field_name: str, rule: str) -> None:
    """`require(self.width >= 1, "width", "at least 1")` inside a config's `validate`."""
    if not condition:
        raise ConfigError(field_name, rule)


@dataclass(frozen=True)
class TrainingGrid:
    """The grid of pixels a fit trains on (under the alternate protocol, every other pixel of the image)."""

    height: int
    width: int

    def __post_init__(self):
        if not (isinstance(self.height, int) and isinstance(self.width, int) and self.height >= 1 and self.width >= 1):
            raise ValueError(f"a training grid is at least 1 x 1 pixels, got {self.height} x {self.width}")

    @property
    def side(self) -> int:
        """Pixels along the longer side: what a square frame or a per-side frequency follows."""
        return max(self.height, self.width)

    @property
    def nyquist(self) -> float:
        """The highest frequency the grid resolves, in cycles per image side: side / 2."""
        return self.side / 2


# The grid settings follow where a caller builds without one (a parameter count, a model built outside a fit):
# the standard preset's training grid (256^2 images, every other pixel). Fits always pass their own.
REFERENCE_GRID = TrainingGrid(128, 128)


@dataclass
class RepresentationConfig:
    """Fields every representation has: its seed and how the engine optimises it.

    The optimiser fields (`TRAINING_FIELDS`) shape the fit, not the function, so a stream need not store them.
    A config checks its own values when it is made (`validate`); subclasses add their ranges.
    Settings that follow the training grid: `FOLLOWS` maps each relative field (None: not used) to the absolute
    field it sets, and `follow_grid` derives the absolute values (a relative field, when set, wins).
    """

    FOLLOWS: ClassVar[Mapping[str, str]] = {}

    lr: float = 1e-3  # Adam learning rate
    schedule: Schedule = "constant"  # learning rate over the fit (bench/engine.py runs it)
    lr_final: float = 0.1  # cosine / exponential: the learning rate at the end, as a fraction of lr
    adam_betas: tuple[float, float] = (0.9, 0.999)  # torch's defaults
    adam_eps: float = 1e-8
    seed: int = 0  # seeds fixed random parts (Fourier features' B), so a bitstream can rebuild them from the config

    def __post_init__(self):
        _check_types(self)
        self.validate()

    def validate(self) -> None:
        """Ranges of the fields; raise through `require`. Subclasses call super().validate() first."""
        require(math.isfinite(self.lr) and self.lr > 0, "lr", "a positive number")
        require(0 < self.lr_final <= 1, "lr_final", "in (0, 1]")
        require(all(0 <= b < 1 for b in self.adam_betas), "adam_betas", "two numbers in [0, 1)")
        require(self.adam_eps > 0, "adam_eps", "positive")
        require(0 <= self.seed < 2**63, "seed", "a non-negative integer")
        for relative in self.FOLLOWS:
            value = getattr(self, relative)
            require(value is None or 0 < value <= 1e3, relative, "None or in (0, 1000] (relative to the training grid)")

    def follow_grid(self, grid: TrainingGrid) -> dict[str, Any]:
        """The absolute settings this config derives from `grid`, for each relative field that is set. By default
        a relative field is a frequency in units of the grid's Nyquist frequency (side / 2): absolute = value x
        side / 2. A config whose relative fields mean something else overrides this."""
        return {absolute: getattr(self, relative) * grid.nyquist for relative, absolute in self.FOLLOWS.items()
                if getattr(self, relative) is not None}


TRAINING_FIELDS = frozenset(f.name for f in dataclasses.fields(RepresentationConfig)) - {"seed"}


def model_settings(config: RepresentationConfig) -> dict[str, Any]:
    """The fields that decide the function a config builds: not the optimiser's, and not the relative settings
    (their absolute values, derived at build time, are here)."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in TRAINING_FIELDS and k not in config.FOLLOWS}




def _check_types(config: RepresentationConfig) -> None:
    """Each field of its declared type (ints where ints, numbers where floats, one of a Literal's values)."""
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        value, kind = getattr(config, f.name), hints[f.name]
        coerced = _coerce(value, kind)
        if coerced is _INVALID:
            raise ConfigError(f.name, _describe(kind) + f", not {value!r}")
        object.__setattr__(config, f.name, coerced)


_INVALID = object()


def _coerce(value: Any, kind: Any) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in args:  # `float | None`: None, or the other type
        (other,) = [a for a in args if a is not type(None)]
        return None if value is None else _coerce(value, other)
    if origin is Literal:
        return value if value in args else _INVALID
    if origin is tuple:
        if not isinstance(value, (tuple, list)) or len(value) != len(args):
            return _INVALID
        items = tuple(_coerce(v, k) for v, k in zip(value, args))
        return _INVALID if any(i is _INVALID for i in items) else items
    if kind is bool:
        return value if isinstance(value, bool) else _INVALID
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _INVALID
    if kind is float:  # an int is a valid float (--set siren.omega_0=20); stored as float so keys stay stable
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return float(value) if ok else _INVALID
    if kind is str:
        return value if isinstance(value, str) else _INVALID
    return value  # other annotations are the representation's own business


def _describe(kind: Any) -> str:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        return "none or " + _describe(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        return f"a list of {len(args)} values"
    return {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}.get(
        kind, str(kind))


@dataclass(frozen=True)
class SizeKnob:
    """The one integer setting that scales a representation (SIREN's width, an RBF grid, a Gaussian count).

    `follow` gives other settings that scale with it (a Fourier-feature count that shrinks with the width).
    The compression ladders and parameter-matched comparisons move this knob within [low, high].
    """

    field: str
    low: int
    high: int
    follow: Callable[[int], dict[str, Any]] | None = None

    def overrides(self, value: int) -> dict[str, Any]:
        return {self.field: value, **(self.follow(value) if self.follow else {})}


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    config_cls: type[RepresentationConfig]
    builder: Callable[[Any, int], nn.Module]
    summary: str
    source: str = ""  # where the representation and its defaults come from
    knob: SizeKnob | None = None
    # Overrides per size class: "tiny" (smoke and CI presets: 32-64 px images, seconds per fit) and "standard"
    # (a laptop CPU at 256 px). A class not given is derived from the knob (`sized_overrides`).
    sizes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Tuning search space: field -> candidate values (the learning rate plus the settings that matter most).
    search: Mapping[str, tuple] = field(default_factory=dict)
    batchable: bool | None = None  # can fits be stacked under vmap; None: find out by trying (bench/batched.py)
    plugin: str | None = None  # the module or file an outside representation came from (streams name it)


class UnknownRepresentationError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


_REGISTRY: Registry[RegistryEntry] = Registry("representation", UnknownRepresentationError)
_PLUGIN_SOURCES: list[str] = []  # the plugin being loaded (plugins.load_plugin), innermost last


def register(name: str, config: type[RepresentationConfig], *, source: str = "", knob: SizeKnob | None = None,
             sizes: Mapping[str, Mapping[str, Any]] | None = None, search: Mapping[str, tuple] | None = None,
             batchable: bool | None = None):
    """Decorator over `builder(config, out_features) -> nn.Module`: `@register("siren", SirenConfig, ...)`."""

    def decorator(builder):
        fields = {f.name for f in dataclasses.fields(config)}
        named = {*(sizes or {}).get("tiny", {}), *(sizes or {}).get("standard", {}), *(search or {})}
        named |= {knob.field} if knob else set()
        if unknown := sorted(named - fields):
            raise ValueError(f"representation {name!r} declares settings its config lacks: {', '.join(unknown)}")
        summary = (builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else ""
        plugin = _PLUGIN_SOURCES[-1] if _PLUGIN_SOURCES else (
            None if builder.__module__.startswith(__package__ or "fitbench") else builder.__module__)
        _REGISTRY.register(name, RegistryEntry(name, config, builder, summary, source, knob, dict(sizes or {}),
                                        dict(search or {}), batchable, plugin))
        return builder

    return decorator


def register_alias(old: str, new: str) -> None:
    """A renamed representation: records and streams that carry `old` still find it (as `new`)."""
    _REGISTRY.alias(old, new)


def list_representations(pattern: str = "*") -> list[str]:
    return _REGISTRY.names(pattern)


def get_entry(name: str) -> RegistryEntry:
    return _REGISTRY.lookup(name)


def make_config(name: str, *, training_grid: TrainingGrid | None = None, **overrides: Any) -> RepresentationConfig:
    """The default config of `name` with `overrides` applied, and with `training_grid` given, the settings that
    follow it derived from it; an unknown field or a bad value is one line."""
    config_cls = get_entry(name).config_cls
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"{name} has no setting {', '.join(unknown)}; its settings are: {', '.join(sorted(valid))}")
    try:
        config = config_cls(**overrides)
    except ConfigError as error:
        value = overrides.get(error.field_name, getattr(config_cls, error.field_name, None))
        raise ValueError(f"{name}.{error.field_name} = {value!r} is not valid: must be {error.rule}") from None
    if training_grid is None:
        return config
    derived = config.follow_grid(training_grid)
    try:
        return dataclasses.replace(config, **derived)
    except ConfigError as error:
        raise ValueError(f"{name}.{error.field_name} = {derived.get(error.field_name)!r}, derived for a "
                         f"{training_grid.height} x {training_grid.width} training grid, is not valid: must be "
                         f"{error.rule}") from None


def merge_overrides(name: str, *layers: Mapping[str, Any]) -> dict[str, Any]:
    """Layers of overrides, later ones winning. A layer that sets an absolute setting switches off the relative
    setting that would derive it (`{"omega_0": 20}` after `{"omega_0_nyquist": 0.2}` means omega_0 = 20)."""
    follows = get_entry(name).config_cls.FOLLOWS
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer)
        merged.update({relative: None for relative, absolute in follows.items()
                       if absolute in layer and relative not in layer})
    return merged


def build(name: str, out_features: int = 3, *, training_grid: TrainingGrid | None = None, **overrides: Any
          ) -> nn.Module:
    """Build representation `name` producing `out_features` channels; `overrides` replace config defaults.

    `training_grid`: the pixels the model will be fitted to, which the settings that follow the image are derived
    from (REFERENCE_GRID when none is given)."""
    config = make_config(name, training_grid=training_grid or REFERENCE_GRID, **overrides)
    module = get_entry(name).builder(config, out_features)
    module.representation = name
    module.config = config
    return module


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters: what a compressed model must store (fixed buffers such as B are regenerated)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def parameter_count(name: str, out_features: int, *, training_grid: TrainingGrid | None = None, **overrides: Any
                    ) -> int:
    """Trainable parameters of a config, without allocating them where the representation builds on `meta`."""
    try:
        with torch.device("meta"):
            return count_parameters(build(name, out_features, training_grid=training_grid, **overrides))
    except ValueError:
        raise  # an invalid config, not a meta-device limitation
    except Exception:  # noqa: BLE001 - some representations cannot be built on the meta device
        return count_parameters(build(name, out_features, training_grid=training_grid, **overrides))


# Parameter counts of the size classes, for representations that do not declare their sizes: about the
# smoke preset's 2-layer x 32 networks and the standard preset's 3 x 128 ReLU network.
SIZE_CLASS_PARAMETERS = {"tiny": 2_500, "standard": 35_000}


def knob_for_parameters(name: str, target: int, out_features: int = 3, base: Mapping[str, Any] | None = None,
                        training_grid: TrainingGrid | None = None) -> dict[str, Any]:
    """Overrides (base plus the knob) whose parameter count is nearest `target`; {} without a knob.

    Bisection for the smallest knob value reaching the target, then the nearer of it and its predecessor.
    Parameter counts only grow with the knob, which every knob here satisfies.
    """
    knob, base = get_entry(name).knob, dict(base or {})
    if knob is None:
        return base
    count = lambda v: parameter_count(name, out_features, training_grid=training_grid,  # noqa: E731
                                      **{**base, **knob.overrides(v)})
    low, high = knob.low, knob.high
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if count(middle) < target else (low, middle)
    best = min({max(low - 1, knob.low), low}, key=lambda v: abs(count(v) - target))
    return {**base, **knob.overrides(best)}


def parameters_missed(name: str, target: int, out_features: int, overrides: Mapping[str, Any],
                      tolerance: float = 1.5, training_grid: TrainingGrid | None = None) -> str | None:
    """Why `overrides` (from `knob_for_parameters`) give more than `tolerance` times too few or too many
    parameters for `target`, naming the real count; None when they come near it."""
    count = parameter_count(name, out_features, training_grid=training_grid, **overrides)
    if target / tolerance <= count <= target * tolerance:
        return None
    knob = get_entry(name).knob
    if knob is None:
        return f"{name} declares no size knob: it has {count:,} parameters, not about {target:,}"
    return (f"{name} has {count:,} parameters, not about {target:,}: its size knob {knob.field} goes "
            f"{knob.low}..{knob.high} and is at {overrides[knob.field]}")


def sized_overrides(name: str, size_class: str | None) -> dict[str, Any]:
    """The overrides of a size class: declared by the representation, else matched by its knob; None: defaults."""
    if size_class is None:
        return {}
    entry = get_entry(name)
    if size_class in entry.sizes:
        return dict(entry.sizes[size_class])
    if size_class not in SIZE_CLASS_PARAMETERS:
        raise ValueError(f"unknown size class {size_class!r}; choose from: {', '.join(SIZE_CLASS_PARAMETERS)}")
    return knob_for_parameters(name, SIZE_CLASS_PARAMETERS[size_class])
