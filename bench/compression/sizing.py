"""What decoding a stream will cost, bounded before it is paid.

A stream's header names a representation, its settings and an image size, and a small stream can name a huge
model or image (an all-zero payload compresses to almost nothing). The header's counts of weights and tensors
are checked against hard limits first (bitstream.py); then the decoder

1. builds the model under a budget derived from those counts (`build_bounded`): every tensor the build creates
   is counted as it is created, as is every parameter a module registers, and the build stops the moment it
   passes what the header's weights allow. A lying depth or grid therefore costs a few layers, not the model;
2. measures the reconstruction's cost per pixel on a probe of PROBE_PIXELS pixels (`per_pixel_cost`): the
   multiply-adds of its matrix products and the elements every torch call returns. The reconstruction
   costs that times H x W, which is checked before a pixel is rendered, and it renders in chunks sized so the
   activations of one chunk stay bounded.

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

PROBE_PIXELS = 16
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
        inputs = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        self.created += sum(t.numel() for t in _tensors(out) if t.untyped_storage().data_ptr() not in inputs)
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
}


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


class _CountWork(TorchFunctionMode):
    """Multiply-adds of matrix products (output elements x inner dimension) and elements every call returns."""

    def __init__(self):
        super().__init__()
        self.multiply_adds, self.elements = 0, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = _tensors(out)
        if func in _PRODUCTS and len(args) > _PRODUCTS[func] and isinstance(args[_PRODUCTS[func]], torch.Tensor):
            self.multiply_adds += sum(t.numel() for t in outputs) * args[_PRODUCTS[func]].shape[-1]
        self.elements += sum(t.numel() for t in outputs)
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
class PixelCost:
    multiply_adds: float  # per pixel, in matrix products
    elements: float  # per pixel, written by every op (an upper bound on the activations one pixel needs)

    @property
    def work(self) -> float:
        return self.multiply_adds + self.elements


def per_pixel_cost(model: nn.Module) -> PixelCost:
    """The reconstruction's cost per pixel, counted on PROBE_PIXELS pixels."""
    counter = _CountWork()
    device = next(iter(model.parameters()), torch.empty(0)).device
    with torch.no_grad(), counter:
        model(torch.rand(PROBE_PIXELS, 2, generator=torch.Generator().manual_seed(0)).to(device))
    return PixelCost(counter.multiply_adds / PROBE_PIXELS, counter.elements / PROBE_PIXELS)
