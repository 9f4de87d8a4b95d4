"""The coordinate MLP that the activation-function representations share (FINER, Gauss).

Each of them is the same network with a different activation and initialisation: Linear layers on coordinates
mapped to [-1, 1] (as in the SIREN, WIRE and FINER repositories), one activation after each hidden layer and a
linear output. Layers start with PyTorch's default initialisation (what WIRE's Gauss network uses); a
representation whose source initialises differently re-initialises them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

EXP_CUTOFF = 80.0  # exp(-80) ~ 2e-35: smaller values are set to exactly 0


def exp_negative(q: Tensor) -> Tensor:
    """exp(-q), with values below exp(-80) set to exactly 0.

    Gaussian-shaped activations send most inputs far into their tails, where exp underflows to denormal floats;
    CPU arithmetic on denormals (forward and backward) is many times slower (measured: a Gauss network 5x slower
    per step than SIREN, a WIRE network 12x). Values below 2e-35 change no result.
    """
    return _ExpNegative.apply(q)


class _ExpNegative(torch.autograd.Function):
    """exp_negative with its one-line derivative, d exp(-q) / dq = -exp(-q) (0 where cut): autograd of the
    clamp/exp/mask chain kept three tensors and ran four kernels on the way back (WIRE and Gauss steps ~20% faster).
    """

    generate_vmap_rule = True  # batched fits vmap over the models

    @staticmethod
    def forward(q: Tensor) -> Tensor:
        return torch.exp(-q.clamp(max=EXP_CUTOFF)).masked_fill(q > EXP_CUTOFF, 0.0)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(output)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (value,) = ctx.saved_tensors
        return -grad * value


class ActivatedMLP(nn.Module):
    """(x, y) in [0, 1)^2 -> 2 (x, y) - 1 -> `depth` x (Linear(width) + activation) -> Linear(out_features)."""

    def __init__(self, out_features: int, width: int, depth: int, activation: nn.Module):
        super().__init__()
        self.hidden = nn.ModuleList([nn.Linear(2 if i == 0 else width, width) for i in range(depth)])
        self.head = nn.Linear(width, out_features)
        self.activation = activation

    def forward(self, coords: Tensor) -> Tensor:
        features = 2 * coords - 1
        for layer in self.hidden:
            features = self.activation(layer(features))
        return self.head(features)
