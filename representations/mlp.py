"""The MLP every coordinate-encoding representation shares (the FFN paper's network)."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """`depth` hidden Linear+ReLU layers of `width`, then a Linear output and an optional sigmoid.

    FFN's "4-layer network" is depth 3 (three hidden layers plus the output layer). Weights are Glorot-normal
    and biases zero, as in the FFN code (JAX stax defaults), not PyTorch's default init.
    """

    def __init__(self, in_features: int, out_features: int, width: int, depth: int, sigmoid_output: bool = True):
        layers: list[nn.Module] = []
        features = in_features
        for _ in range(depth):
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, out_features))
        if sigmoid_output:
            layers.append(nn.Sigmoid())
        super().__init__(*layers)
        for layer in self:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)
