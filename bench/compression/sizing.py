"""What decoding a stream will cost, bounded before it is paid.

A stream's header names a representation, its settings and an image size, and a small stream can name a huge
model or image (an all-zero payload compresses to almost nothing). The header's counts of weights and tensors
are checked against hard limits first (bitstream.py); then the decoder

1. builds the model under a budget derived from those counts (`build_bounded`): every tensor the build creates
   is counted as it is created, as is every parameter a module registers, and the build stops the moment it
   passes what the header's weights allow. A lying depth or grid therefore costs a few layers, not the model;
2. loads the stream's weights, then measures the reconstruction's cost (`render_cost`) on two probes of pixels
   spread over the image: every torch call is priced by COST_MODEL (seconds per call, per multiply-add and per
   byte it creates, by function, measured on the reference machine) and no probe call may allocate more than
   a chunk's elements. The estimate for H x W pixels (plus writing the image and decoding the payload) is checked
   against the decoder's limit in seconds before a pixel is rendered; rendering goes in chunks sized so that the
   elements one chunk creates stay bounded, and is metered by the same prices, so a model whose cost the probes
   did not see (Gaussians that cover no probe pixel) still stops at the limit.

The cost is counted on the stream's own weights: a model whose work depends on them (Gaussians' footprints) is
priced as it will run.
Every representation maps pixels independently (bench/flops.py relies on the same), so per-pixel counts scale.
The counting is a TorchFunctionMode: a dispatch-level mode (or the meta device) would first import
torch._dynamo, seconds that every `--decode` would pay; the budget keeps the real build as small as the
stream's own claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import register_module_parameter_registration_hook
from torch.overrides import TorchFunctionMode

from fitbench import representations

ELEMENT_ALLOWANCE = 1 << 22  # elements a build may create beyond 4x its weights (buffers, temporaries)
FIXED_PARAMETER_ALLOWANCE = 64  # parameters a model may register beyond its trainable ones (fixed, not stored)


class BudgetExceeded(RuntimeError):
    """Building a model created more than its budget allows."""


class _CountCreated(TorchFunctionMode):
    """Counts the elements of the new tensors torch functions return (views and in-place results share an
    input's storage and create none); raises past `budget`."""

    def __init__(self, budget: int):
        super().__init__()
        self.budget, self.created = budget, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and self.created + _requested(func, args, kwargs) > self.budget:  # before allocating
            raise BudgetExceeded(f"its build asks for more than {self.budget:,} tensor elements")
        out = func(*args, **kwargs)
        self.created += created_elements(args, kwargs, out)
        if self.created > self.budget:
            raise BudgetExceeded(f"its build creates more than {self.budget:,} tensor elements")
        return out


def _size_argument(args: tuple, kwargs: dict) -> int:
    """Elements of a size given as `(2, 3)`, `torch.Size`, `size=...` or loose integers `2, 3`."""
    size = kwargs.get("size", next((a for a in args if isinstance(a, (tuple, list, torch.Size))), None))
    if size is None:
        size = [a for a in args if isinstance(a, int) and not isinstance(a, bool)]
    return math.prod(int(s) for s in size)


def _range_length(args: tuple, kwargs: dict) -> int:
    """Elements of `torch.arange(end)`, `arange(start, end[, step])`."""
    numbers = [float(a) for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
    start, end, step = (0.0, numbers[0], 1.0) if len(numbers) == 1 else (*numbers[:2], *(numbers[2:3] or [1.0]))
    start, end, step = kwargs.get("start", start), kwargs.get("end", end), kwargs.get("step", step)
    return max(0, math.ceil((end - start) / step))


def _steps(args: tuple, kwargs: dict) -> int:
    return int(kwargs.get("steps", args[2] if len(args) > 2 else 0))


# Functions that allocate from a size they are given, and how to read it before they run. Tensor methods get
# the tensor first; `repeat` multiplies it. Any other call is counted as soon as its result exists.
_FACTORIES = {
    **dict.fromkeys((torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn, torch.randint,
                     torch.randperm, torch.eye), _size_argument),
    **dict.fromkeys((torch.Tensor.new_empty, torch.Tensor.new_zeros, torch.Tensor.new_ones, torch.Tensor.new_full),
                    lambda args, kwargs: _size_argument(args[1:], kwargs)),
    torch.Tensor.repeat: lambda args, kwargs: args[0].numel() * _size_argument(args[1:], kwargs),
    torch.linspace: _steps,
    torch.logspace: _steps,
    torch.arange: _range_length,
    torch.bincount: lambda args, kwargs: int(kwargs.get("minlength", args[2] if len(args) > 2 else 0)),
    torch.repeat_interleave: lambda args, kwargs: _repeated(args[0], kwargs["repeats"] if "repeats" in kwargs
                                                            else args[1] if len(args) > 1 else None),
}


def _repeated(values, repeats) -> int:
    """Elements of `repeat_interleave(values, repeats)` (or of `repeat_interleave(repeats)`), read before it runs."""
    if repeats is None:
        return int(values.sum())
    return int(repeats.sum()) if isinstance(repeats, torch.Tensor) else values.numel() * int(repeats)


def _requested(func, args: tuple, kwargs: dict) -> int:
    """Elements the factory call `func(*args, **kwargs)` is about to allocate (0 where it cannot tell)."""
    try:
        return _FACTORIES[func](args, kwargs)
    except (TypeError, ValueError, IndexError, OverflowError, ZeroDivisionError):
        return 0  # a size it cannot read: counted once the tensor exists


# Matrix products and the argument whose last dimension is the inner (summed) one.
_PRODUCTS = {F.linear: 0, torch.matmul: 0, torch.Tensor.matmul: 0, torch.Tensor.__matmul__: 0, torch.mm: 0,
             torch.Tensor.mm: 0, torch.bmm: 0, torch.Tensor.bmm: 0, torch.addmm: 1, torch.Tensor.addmm: 1,
             torch.baddbmm: 1, torch.addmv: 1}


def op_name(func) -> str:
    """The key of a torch function in COST_MODEL.byte_seconds."""
    return getattr(func, "__name__", type(func).__name__)


def multiply_adds(func, args: tuple, out) -> int:
    """Multiply-adds of a matrix product (output elements x inner dimension); 0 for any other call."""
    index = _PRODUCTS.get(func)
    if index is None or len(args) <= index or not isinstance(args[index], torch.Tensor):
        return 0
    return sum(t.numel() for t in _tensors(out)) * args[index].shape[-1]


def created_elements(args: tuple, kwargs: dict, out) -> int:
    """Elements of the new tensors a call returned (views and in-place results share an input's storage)."""
    return sum(t.numel() for t in _created(args, kwargs, out))


def _created(args: tuple, kwargs: dict, out) -> list[torch.Tensor]:
    inputs = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
    return [t for t in _tensors(out) if t.untyped_storage().data_ptr() not in inputs]


def _bytes(tensors: list[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


# Calls whose work follows their input, not their (smaller) output
_REDUCTIONS = {"sum", "mean", "prod", "amax", "amin", "max", "min", "all", "any", "norm", "argmax", "argmin",
               "count_nonzero", "logsumexp"}
_IN_PLACE_OPERATORS = {"__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__",
                       "__ipow__", "__iand__", "__ior__", "__ixor__", "__ilshift__", "__irshift__", "__imatmul__"}


def priced_bytes(func, args: tuple, kwargs: dict, out) -> int:
    """The bytes a call's price is per (bytes, not elements: an int64 or complex element costs twice a float32
    one): what it creates; for a reduction, its largest input; for a call that writes into `out=`, that tensor;
    for an in-place call (`index_add_`, `copy_`, `x += y`), its largest operand besides the tensor it writes (that
    tensor where there is none). A view costs its call only."""
    name = op_name(func)
    if name in _REDUCTIONS:
        return max((_bytes([t]) for t in _tensors((args, kwargs))), default=0)
    if (name.endswith("_") and not name.endswith("__")) or name in _IN_PLACE_OPERATORS:
        operands = _tensors((args[1:], {k: v for k, v in kwargs.items() if k != "out"})) or _tensors(args[:1])
        return max((_bytes([t]) for t in operands), default=0)
    if kwargs.get("out") is not None:
        return _bytes(_tensors(kwargs["out"]))
    return _bytes(_created(args, kwargs, out))


@dataclass(frozen=True)
class CostModel:
    """Seconds of decoding on the reference machine, per unit of each cost the decoder counts: the 2-core AMD EPYC
    (AVX-512) machine this project is developed on, torch 2.13 CPU, one intra-op thread (as `--decode` renders),
    each price the slowest of about thirty models (`python experiments/decode_audit.py calibrate` measures them
    again). The decision to decode is made with these constants, so it is the same on every machine."""

    call: float  # one torch call, with the decoder's own counting of it
    multiply_add: float  # one multiply-add of a matrix product
    byte_seconds: dict[str, float]  # one byte a torch function creates (`priced_bytes`), by name (`op_name`)
    output_value: float  # one pixel and channel of the image: coordinates, clamping, 8-bit conversion, PNG
    stored_value: float  # one stored value: decoding the payload and building the model

    @property
    def other_byte(self) -> float:
        """A byte of a function the calibration did not see (a plugin's): the slowest one it did."""
        return max(self.byte_seconds.values())

    def seconds(self, func, args: tuple, kwargs: dict, out) -> float:
        return (self.call + self.multiply_add * multiply_adds(func, args, out)
                + self.byte_seconds.get(op_name(func), self.other_byte) * priced_bytes(func, args, kwargs, out))


COST_MODEL = CostModel(  # `python experiments/decode_audit.py calibrate`, one thread, under a load average of ~10
    call=1.15e-05, multiply_add=5.74e-11, output_value=8.18e-08, stored_value=4.24e-07,
    byte_seconds={"__and__": 1.87e-10, "__floordiv__": 9.92e-10, "__getitem__": 9.92e-10, "__rsub__": 1.17e-10,
                  "__setitem__": 9.92e-10, "__xor__": 6.73e-11, "abs": 9.08e-10, "add": 9.59e-10, "addmm": 9.92e-10,
                  "all": 9.92e-10, "arange": 9.92e-10, "argsort": 9.92e-10, "bincount": 9.92e-10, "cat": 1.02e-09,
                  "ceil": 9.92e-10, "clamp": 9.58e-10, "complex": 9.92e-10, "cos": 1.63e-09, "cumsum": 9.92e-10,
                  "div": 1.08e-09, "empty_like": 9.92e-10, "exp": 1.22e-09, "floor": 5.02e-11, "ge": 9.92e-10,
                  "grid_sample": 9.92e-10, "gt": 6.47e-10, "index_add_": 5.72e-11, "index_copy_": 9.92e-10,
                  "index_select": 3.17e-09, "le": 9.92e-10, "linear": 8.45e-10, "long": 1.14e-09, "lt": 9.92e-10,
                  "masked_fill": 1.22e-09, "matmul": 9.92e-10, "max": 9.92e-10, "mul": 1.03e-09, "neg": 1.05e-09,
                  "new_empty": 9.92e-10, "new_tensor": 9.92e-10, "new_zeros": 9.92e-10, "ones_like": 9.92e-10,
                  "pow": 1.05e-09, "relu": 1.05e-09, "remainder": 4.65e-10, "repeat_interleave": 9.92e-10,
                  "reshape": 9.92e-10, "searchsorted": 9.92e-10, "sigmoid": 9.92e-10, "sin": 1.81e-09,
                  "softplus": 9.92e-10, "sqrt": 9.92e-10, "stack": 1.3e-09, "sub": 9.09e-10, "sum": 1.8e-09,
                  "tanh": 9.92e-10, "where": 2.25e-10, "zeros": 9.92e-10, "zeros_like": 8.64e-10},
)


class Meter(TorchFunctionMode):
    """Counts what a model's torch calls cost (COST_MODEL seconds, created elements, calls) as they run. Stops
    with BudgetExceeded before a factory allocates more than `max_elements` at once, and once the seconds pass
    `max_seconds`."""

    def __init__(self, max_seconds: float = math.inf, max_elements: int = 1 << 62, model: CostModel = COST_MODEL):
        super().__init__()
        self.max_seconds, self.max_elements, self.model = max_seconds, max_elements, model
        self.seconds, self.elements, self.calls = 0.0, 0, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and _requested(func, args, kwargs) > self.max_elements:  # before allocating
            raise BudgetExceeded(f"one of its calls asks for more than {self.max_elements:,} tensor elements")
        out = func(*args, **kwargs)
        created = created_elements(args, kwargs, out)
        self.seconds += self.model.seconds(func, args, kwargs, out)
        self.elements += created
        self.calls += 1
        if self.seconds > self.max_seconds:
            raise BudgetExceeded(f"it passed {self.max_seconds:.3g} estimated seconds")
        return out


def _tensors(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    return []


def build_bounded(name: str, out_features: int, settings: dict[str, Any], elements: int, tensors: int) -> nn.Module:
    """`representations.build`, stopped with BudgetExceeded once it creates more than a model of `elements`
    trainable values in `tensors` tensors can need (4x the values plus ELEMENT_ALLOWANCE elements; the tensors
    plus FIXED_PARAMETER_ALLOWANCE registered parameters)."""
    limit = tensors + FIXED_PARAMETER_ALLOWANCE
    registered = 0

    def count_parameter(module, parameter_name, parameter):
        nonlocal registered
        registered += 1
        if registered > limit:
            raise BudgetExceeded(f"its build registers more than {limit} parameters")

    handle = register_module_parameter_registration_hook(count_parameter)
    try:
        with _CountCreated(4 * elements + ELEMENT_ALLOWANCE):
            return representations.build(name, out_features, **settings)
    finally:
        handle.remove()


@dataclass(frozen=True)
class RenderCost:
    """What rendering costs in COST_MODEL seconds and created elements: per pixel, and per forward call (work that
    does not grow with the pixels of a call, such as a splatting plan's tile tables)."""

    seconds_per_pixel: float
    seconds_per_call: float
    elements_per_pixel: float
    elements_per_call: float
    probe_seconds: float = 0.0  # what measuring it cost (the probes run the model too)

    def chunk_pixels(self, max_elements: int) -> int:
        """Pixels per forward call that keep the elements it creates near `max_elements` (at most 2^16)."""
        return int(min(1 << 16, max(1, (max_elements - self.elements_per_call) // max(self.elements_per_pixel, 1))))

    def seconds(self, pixels: int, chunk: int) -> float:
        return pixels * self.seconds_per_pixel + math.ceil(pixels / chunk) * self.seconds_per_call


PROBE_SIDES = (8, 16)  # probes of 8^2 and 16^2 pixels: per pixel from their difference, per call from the rest


def render_cost(model: nn.Module, height: int, width: int, max_elements: int, max_seconds: float = math.inf
                ) -> RenderCost:
    """The reconstruction's cost, counted on two probes of pixels spread evenly over the `height` x `width` image
    (at the coordinates the render uses, so a model whose work depends on where its weights put things, such as
    Gaussians' footprints, is probed where it will run). A factory call may allocate at most `max_elements`, and
    the probes stop once together they cost more than `max_seconds` (BudgetExceeded)."""
    probes, spent = [], 0.0
    for side in PROBE_SIDES:
        rows = torch.linspace(0, height - 1, min(side, height)).round() / height
        columns = torch.linspace(0, width - 1, min(side, width)).round() / width
        grid_y, grid_x = torch.meshgrid(rows, columns, indexing="ij")
        coords = torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)
        meter = Meter(max_seconds - spent, max_elements)
        device = next(iter(model.parameters()), torch.empty(0)).device
        with torch.no_grad(), meter:
            model(coords.to(device))
        probes.append((len(coords), meter.seconds, meter.elements))
        spent += meter.seconds
    (small, seconds_small, elements_small), (large, seconds_large, elements_large) = probes
    if large == small:  # an image of at most 8 x 8 pixels: the probe was the whole image, rendered in one call
        return RenderCost(0.0, seconds_large, 0.0, elements_large, spent)
    per_pixel = max(seconds_large - seconds_small, 0.0) / (large - small)
    elements = max(elements_large - elements_small, 0) / (large - small)
    return RenderCost(per_pixel, max(seconds_small - small * per_pixel, 0.0), elements,
                      max(elements_small - small * elements, 0.0), spent)
