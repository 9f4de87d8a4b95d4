"""The generative models, registered by name: FOKR, the Fourier-net generator, VAE and CVAE (REFERENCE.md §2).

Every model maps a latent z (and, if conditional, a label) to 28 x 28 images through `decode`, draws latents from
its prior with `prior`, and trains through `loss(images, labels, index)`; sampling and interpolation are the same
for all of them, so the training loop, the scores and the figures never ask which model they hold.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from fitbench import representations
from fitbench.representations.fnet import FourierLayer
from fitbench.representations.rbf import RBFBasis

from .data import NUM_CLASSES, SIDE


@dataclass
class ModelConfig:
    """Fields every generative model has: its optimiser and batch size, from the model's source."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    seed: int = 0


class GenerativeModel(nn.Module):
    conditional: bool = False
    latent_dim: int

    def loss(self, images: Tensor, labels: Tensor, index: Tensor) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def prior(self, labels: Tensor) -> Tensor:
        """Latents to sample from, one per label (labels are ignored by unconditional models)."""
        return torch.randn(len(labels), self.latent_dim)

    def decode(self, z: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def after_training(self) -> dict[str, float]:
        """Settings fixed once training is done (reported in the record's logs)."""
        return {}

    @torch.no_grad()
    def sample(self, labels: Tensor) -> Tensor:
        """Images (n, 1, 28, 28) in [0, 1], one per label."""
        return self.decode(self.prior(labels), labels).clamp(0, 1)

    @torch.no_grad()
    def interpolate(self, label: int, steps: int) -> Tensor:
        """Images along the straight line between two prior draws, all of class `label`."""
        labels = torch.full((steps,), label)
        ends = self.prior(labels[:2])
        weights = torch.linspace(0, 1, steps)[:, None]
        return self.decode((1 - weights) * ends[0] + weights * ends[1], labels).clamp(0, 1)


def one_hot(labels: Tensor) -> Tensor:
    return F.one_hot(labels, NUM_CLASSES).float()


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over latent dimensions, per row."""
    return -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum(1)


def pixel_grid(side: int = SIDE) -> Tensor:
    """(side², 2) coordinates (x = column, y = row), row-major, on linspace(0, 1, side): FOKR's t on [0, 1]²."""
    axis = torch.linspace(0, 1, side)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], 1)


# ---------------------------------------------------------------------------------------------------------------- FOKR
@dataclass
class FOKRConfig(ModelConfig):
    latent_dim: int = 8
    grid: int = 14  # 14 x 14 RBF centres
    width_in_spacings: float = 2.6  # ℓ = 2.6 / 13 = 0.2
    learn_width: bool = False
    learn_amplitude: bool = False
    kl_weight: float = 1e-4
    tv_weight: float = 1e-4
    weight_decay: float = 1e-6
    seed: int = 42


class FOKR(GenerativeModel):
    """Y = β(label, z) Φᵀ + μ with Φ the `rbf` representation's Gaussian grid and z from a label-conditional Gaussian."""

    conditional = True

    def __init__(self, config: FOKRConfig):
        super().__init__()
        self.config, self.latent_dim = config, config.latent_dim
        rbf = representations.make_config("rbf", grid=config.grid, width_in_spacings=config.width_in_spacings,
                                          learn_width=config.learn_width, learn_amplitude=config.learn_amplitude)
        self.basis = RBFBasis(rbf)
        self.register_buffer("coords", pixel_grid(), persistent=False)
        self.mean_field = nn.Parameter(torch.zeros(SIDE * SIDE))  # μ(t)
        self.z_mean, self.z_logvar = (nn.Sequential(nn.Linear(NUM_CLASSES, 128), nn.ReLU(), nn.Linear(128, config.latent_dim))
                                      for _ in range(2))
        g = config.grid // 2  # the deconvolution doubles a g x g map to the grid
        self.project = nn.Sequential(nn.Linear(NUM_CLASSES + config.latent_dim, 128 * g * g), nn.LeakyReLU(0.2),
                                     nn.Unflatten(1, (128, g, g)))
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(64, 1, 4, 2, 1),
        )
        # At ℓ = 0.2 each pixel's row of Φ sums to ~32, so a default-initialised β gives images of O(30) and Adam
        # spends its first hundreds of steps only shrinking them (MSE 1.1 after 3 epochs of 5k images). A fixed
        # factor 1/row-sum on β starts the images at the data's scale; the function class is unchanged.
        with torch.no_grad():
            self.beta_scale = 1.0 / float(self.basis.matrix(self.coords).sum(1).mean())

    def latent_distribution(self, labels: Tensor) -> tuple[Tensor, Tensor]:
        hot = one_hot(labels)
        return self.z_mean(hot), self.z_logvar(hot).clamp(-10, 10)

    def prior(self, labels: Tensor) -> Tensor:
        mean, logvar = self.latent_distribution(labels)
        return mean + (0.5 * logvar).exp() * torch.randn_like(mean)

    def decode(self, z: Tensor, labels: Tensor) -> Tensor:
        beta = self.beta_scale * self.deconv(self.project(torch.cat([one_hot(labels), z], 1))).flatten(1)  # (B, G²)
        phi = self.basis.matrix(self.coords)  # (784, G²); recomputed because ℓ and A may be learned
        return (beta @ phi.T + self.mean_field).view(-1, 1, SIDE, SIDE)

    def loss(self, images, labels, index):
        mean, logvar = self.latent_distribution(labels)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        mse = F.mse_loss(self.decode(z, labels), images)
        kl = gaussian_kl(mean, logvar).mean()
        mu = self.mean_field.view(SIDE, SIDE)
        tv = (mu[1:] - mu[:-1]).pow(2).mean() + (mu[:, 1:] - mu[:, :-1]).pow(2).mean()
        total = mse + self.config.kl_weight * kl + self.config.tv_weight * tv
        return total, {"mse": mse.item(), "kl": kl.item(), "tv": tv.item()}


# -------------------------------------------------------------------------------------------------- Fourier-net generator
@dataclass
class FourierGeneratorConfig(ModelConfig):
    latent_dim: int = 35
    width: int = 6  # of the generated fnet (2^width terms per hidden layer)
    depth: int = 3
    # The thesis feeds raw pixel indices with k scaled by 1/32; on a 28-pixel side that is 28/32 periods per image.
    input_frequency: float = 28 / 32
    hidden: tuple[int, int] = (500, 1000)  # decoder widths (the CIFAR script's)
    latent_penalty: float = 300.0  # λ of λ·Σz²
    sigma: float = 0.0  # sampling std of z; 0: chosen on training data after training (see `choose_sigma`)
    num_train: int = 60000  # one free latent per training image


class FourierNetGenerator(GenerativeModel):
    """An MLP maps z to every coefficient of an `fnet`, which is evaluated at the 28 x 28 pixel coordinates."""

    def __init__(self, config: FourierGeneratorConfig):
        super().__init__()
        self.config, self.latent_dim = config, config.latent_dim
        net = representations.build("fnet", out_features=1, width=config.width, depth=config.depth,
                                    input_frequency=config.input_frequency)
        for layer in net.modules():
            if isinstance(layer, FourierLayer):
                # The fused kernel is a custom autograd.Function that vmap cannot batch; the layer's direct form
                # is the same formula (fnet's tests check they agree) in plain torch ops.
                layer.forward = layer.forward_direct
        net.requires_grad_(False)
        self.net = [net]  # in a list so its (unused) own weights are not part of this model's state
        self.shapes = {name: p.shape for name, p in net.named_parameters()}
        count = sum(s.numel() for s in self.shapes.values())
        h1, h2 = config.hidden
        self.decoder = nn.Sequential(nn.Linear(config.latent_dim, h1), nn.LeakyReLU(0.3), nn.Linear(h1, h2),
                                     nn.LeakyReLU(0.3), nn.Linear(h2, count))
        self.latents = nn.Embedding(config.num_train, config.latent_dim)
        nn.init.normal_(self.latents.weight)
        self.register_buffer("coords", pixel_grid(SIDE) * (SIDE - 1) / SIDE, persistent=False)  # fnet's col / W
        self.register_buffer("sigma", torch.tensor(config.sigma))

    def decode(self, z, labels):
        flat = self.decoder(z)
        params, start = {}, 0
        for name, shape in self.shapes.items():
            params[name] = flat[:, start:start + shape.numel()].view(-1, *shape)
            start += shape.numel()
        net = self.net[0]
        out = vmap(lambda p: functional_call(net, p, (self.coords,)))(params)  # (B, 784, 1)
        return out.view(-1, 1, SIDE, SIDE)

    def prior(self, labels):
        return torch.randn(len(labels), self.latent_dim) * self.sigma

    def loss(self, images, labels, index):
        z = self.latents(index)
        # Summed squared error and λ·Σz², both per image (the source sums over the batch; same minimiser).
        sse = (self.decode(z, labels) - images).pow(2).flatten(1).sum(1).mean()
        penalty = self.config.latent_penalty * z.pow(2).sum(1).mean()
        return sse + penalty, {"sse": sse.item(), "z_rms": z.pow(2).mean().sqrt().item()}

    def after_training(self) -> dict[str, float]:
        """σ for sampling: the RMS of the learned training latents (a Gaussian fitted to them), unless set."""
        if float(self.sigma) == 0:
            self.sigma.fill_(self.latents.weight.detach().pow(2).mean().sqrt())
        return {"sigma": float(self.sigma)}


# ------------------------------------------------------------------------------------------------------- VAE and CVAE
@dataclass
class VAEConfig(ModelConfig):
    latent_dim: int = 20
    batch_size: int = 64


class VAE(GenerativeModel):
    """The conv VAE of REFERENCE.md; with `conditional`, the one-hot label joins the encoder input and the decoder input."""

    def __init__(self, config: VAEConfig, conditional: bool = False):
        super().__init__()
        self.config, self.latent_dim, self.conditional = config, config.latent_dim, conditional
        extra = NUM_CLASSES if conditional else 0
        self.encoder = nn.Sequential(nn.Conv2d(1 + extra, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                                     nn.Flatten())
        self.head_mean, self.head_logvar = nn.Linear(3136, config.latent_dim), nn.Linear(3136, config.latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(config.latent_dim + extra, 6272), nn.Unflatten(1, (128, 7, 7)),
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 1, 3, padding=1), nn.Sigmoid(),
        )

    def decode(self, z, labels):
        return self.decoder(torch.cat([z, one_hot(labels)], 1) if self.conditional else z)

    def loss(self, images, labels, index):
        x = images
        if self.conditional:  # the label as 10 constant channels
            x = torch.cat([images, one_hot(labels)[:, :, None, None].expand(-1, -1, SIDE, SIDE)], 1)
        h = self.encoder(x)
        mean, logvar = self.head_mean(h), self.head_logvar(h)
        z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
        bce = F.binary_cross_entropy(self.decode(z, labels), images, reduction="sum") / len(images)
        kld = gaussian_kl(mean, logvar).mean()
        # The source sums BCE + KLD over the batch; per image here so the loss reads the same at any batch size.
        return bce + kld, {"bce": bce.item(), "kld": kld.item()}


# ------------------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_cls: type[ModelConfig]
    build: Callable[[Any], GenerativeModel]
    summary: str


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry("fokr", FOKRConfig, FOKR, "FOKR: deconv β(label, z) on a fixed 14x14 Gaussian RBF grid, + mean field"),
        ModelEntry("fourier_net", FourierGeneratorConfig, FourierNetGenerator,
                   "auto-decoded latent -> all coefficients of an fnet evaluated on the pixel grid"),
        ModelEntry("vae", VAEConfig, VAE, "conv VAE, BCE + KLD"),
        ModelEntry("cvae", VAEConfig, lambda config: VAE(config, conditional=True), "conditional conv VAE"),
    ]
}


def get_model_entry(name: str) -> ModelEntry:
    if name not in MODELS:
        raise ValueError(f"unknown generative model {name!r}; choose from: {', '.join(MODELS)}")
    return MODELS[name]


def make_model_config(name: str, **overrides: Any) -> ModelConfig:
    config_cls = get_model_entry(name).config_cls
    valid = {f.name for f in dataclasses.fields(config_cls)}
    if unknown := sorted(set(overrides) - valid):
        raise ValueError(f"{name} has no setting {', '.join(unknown)}; its settings are: {', '.join(sorted(valid))}")
    return config_cls(**overrides)


def build_model(name: str, config: ModelConfig) -> GenerativeModel:
    return get_model_entry(name).build(config)
