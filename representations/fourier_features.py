"""Gaussian random Fourier features in front of the shared ReLU MLP (Tancik et al. 2020)."""

from dataclasses import dataclass

from .encodings import EncodedMLP, GaussianFourierFeatures
from .mlp import MLP
from .registry import RepresentationConfig, register


@dataclass
class FourierFeaturesConfig(RepresentationConfig):
    num_features: int = 256  # rows of B; FFN mapping size 256
    sigma: float = 10.0  # FFN tuned: 10 on natural images, 14 on text
    width: int = 256
    depth: int = 3
    lr: float = 1e-3  # FFN


@register("fourier_features", FourierFeaturesConfig)
def fourier_features(config: FourierFeaturesConfig, out_features: int):
    """Gaussian Fourier features, B ~ N(0, sigma^2) fixed, + ReLU MLP (FFN)."""
    encoding = GaussianFourierFeatures(2, config.num_features, config.sigma, config.seed)
    return EncodedMLP(encoding, MLP(encoding.get_out_dim(), out_features, config.width, config.depth))
