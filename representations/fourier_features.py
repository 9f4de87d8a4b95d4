"""Gaussian random Fourier features in front of the shared ReLU MLP (Tancik et al. 2020)."""

from dataclasses import dataclass

from .encodings import EncodedMLP, GaussianFourierFeatures
from .mlp import MLP
from .registry import RepresentationConfig, SizeKnob, register, require


@dataclass
class FourierFeaturesConfig(RepresentationConfig):
    num_features: int = 256  # rows of B; FFN mapping size 256
    sigma: float = 10.0  # FFN tuned: 10 on natural images, 14 on text
    # sigma relative to the training grid: sigma = sigma_nyquist x side / 2 (the grid's Nyquist frequency), so that
    # B keeps its share of the frequencies the grid resolves at any size; None: sigma as given. FFN's 10 on its
    # 256^2 training grid (512^2 images, every other pixel) is 10 / 128.
    sigma_nyquist: float | None = None
    FOLLOWS = {"sigma_nyquist": "sigma"}
    width: int = 256
    depth: int = 3
    lr: float = 1e-3  # FFN

    def validate(self) -> None:
        super().validate()
        require(self.num_features >= 1, "num_features", "at least 1")
        require(0 < self.sigma <= 1e4, "sigma", "in (0, 1e4] cycles per image")
        require(self.width >= 1, "width", "at least 1")
        require(self.depth >= 0, "depth", "at least 0 (hidden layers)")


@register(
    "fourier_features", FourierFeaturesConfig,
    source="Tancik et al. 2020 (FFN): Gaussian B ~ N(0, sigma^2) (256 x 2), sigma = 10 natural / 14 text, lr 1e-3",
    knob=SizeKnob("width", 2, 512, follow=lambda w: {"num_features": max(w // 2, 1)}),
    # tiny: sigma 3 keeps most of B below the 16-period Nyquist limit of a 32^2 training grid
    sizes={"tiny": {"width": 32, "depth": 2, "num_features": 16, "sigma": 3.0},
           "standard": {"width": 128, "depth": 3, "sigma_nyquist": 10 / 128}},
    search={"lr": (3e-4, 1e-3, 3e-3, 1e-2), "sigma_nyquist": (5 / 128, 10 / 128, 20 / 128)},  # FFN: 10 and 14
    batchable=True,
)
def fourier_features(config: FourierFeaturesConfig, out_features: int):
    """Gaussian Fourier features, B ~ N(0, sigma^2) fixed, + ReLU MLP (FFN)."""
    encoding = GaussianFourierFeatures(2, config.num_features, config.sigma, config.seed)
    return EncodedMLP(encoding, MLP(encoding.get_out_dim(), out_features, config.width, config.depth))
