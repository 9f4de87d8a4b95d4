"""fnet and rbf: the fused Fourier layer equals its formula, FNET fits beyond the mean, Φβ equals the RBF field."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from fitbench import representations as R
from fitbench.engine import FitConfig, fit_image
from fitbench.protocol import make_split
from fitbench.representations.fnet import FourierLayer
from fitbench.representations.rbf import RBFBasis
from fitbench.scoring import score


def test_fnet_parameter_count_is_the_thesis_22080():
    # 2*8*2^2 (first) + 5 * 2*8*2^8 (residual) + 2*3*2^8 (output), with or without the mean_terms scaling
    for mean_terms in (True, False):
        assert R.count_parameters(R.build("fnet", 3, width=8, depth=6, mean_terms=mean_terms)) == 22080


@pytest.mark.parametrize("in_dim,out_dim,mean_terms", [(1, 4, False), (2, 8, True), (3, 5, False), (8, 3, True)])
@pytest.mark.parametrize("keep", [1 << 24, 0, 2000])  # backward reuses all, none, or the first blocks' values
def test_fused_fourier_layer_equals_the_direct_formula(in_dim, out_dim, mean_terms, keep, monkeypatch):
    from fitbench.representations import kept

    monkeypatch.setattr(kept, "KEEP_FLOATS", keep)
    torch.manual_seed(0)
    layer = FourierLayer(in_dim, out_dim, frequency=0.37, init_std=0.1, mean_terms=mean_terms, chunk=64).double()
    x = (3 * torch.randn(200, in_dim, dtype=torch.float64)).requires_grad_()  # 200 rows: several blocks of 64
    fused, direct = layer(x), layer.forward_direct(x)
    torch.testing.assert_close(fused, direct, rtol=1e-12, atol=1e-12)
    inputs = [x, layer.cos_coefficients, layer.sin_coefficients]
    g_fused = torch.autograd.grad(fused.pow(3).sum(), inputs)
    g_direct = torch.autograd.grad(direct.pow(3).sum(), inputs)
    for a, b in zip(g_fused, g_direct):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_direct_formula_is_the_thesis_layer():
    """h(x) = sum over k in {0,1}^m of a_k cos(2π f k·x) + b_k sin(2π f k·x), written out for m = 2."""
    torch.manual_seed(0)
    layer = FourierLayer(2, 1, frequency=0.5, init_std=0.3, mean_terms=True).double()
    x = torch.rand(10, 2, dtype=torch.float64)
    a = layer.cos_coefficients[:, 0] * layer.scale  # the thesis's a_k (stored values are 2^m times larger)
    b = layer.sin_coefficients[:, 0] * layer.scale
    expected = 0
    for index, k in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # itertools.product order
        phase = 2 * torch.pi * 0.5 * (k[0] * x[:, 0] + k[1] * x[:, 1])
        expected = expected + a[index] * torch.cos(phase) + b[index] * torch.sin(phase)
    torch.testing.assert_close(layer(x)[:, 0], expected)
    assert layer.cos_coefficients.std().item() == pytest.approx(0.3 * 4, rel=0.6)  # a_k ~ N(0, 0.3^2) at init


def _fnet_gain_over_mean(steps: int, seed: int, **overrides) -> float:
    image = np.asarray(Image.fromarray(data.camera()).resize((32, 32), Image.LANCZOS), np.float32)[..., None] / 255
    split = make_split("alternate", 32, 32)
    torch.manual_seed(seed)
    model = R.build("fnet", 1, **overrides)
    outcome = fit_image(model, image, split, FitConfig(steps=steps, lr=model.config.lr))
    mean = np.broadcast_to(image[split.train].mean(0), image.shape)
    return score(image, outcome.reconstruction, split).psnr_test - score(image, mean, split).psnr_test


def test_fnet_learns_beyond_the_mean_colour(one_thread):
    # The old defaults (8 periods across the image, raw coefficient sums, lr 1e-3) stay at the mean (+0.0 dB) and
    # one period with raw sums gets +1.2-3.1 dB; the defaults get +5.8-7.2 dB over seeds 0-5 in 40 steps on 16^2
    # training pixels.
    gains = [_fnet_gain_over_mean(40, seed) for seed in range(3)]
    assert np.median(gains) > 4.0, gains
    stuck = _fnet_gain_over_mean(40, 0, input_frequency=8.0, hidden_frequency=1 / 32, mean_terms=False, lr=1e-3)
    assert abs(stuck) < 0.1  # periodic with period 1/8: the best it can do on a whole photo is the mean


def test_rbf_matrix_times_coefficients_is_the_field():
    torch.manual_seed(0)
    model = R.build("rbf", 3, grid=9, learn_width=True)
    with torch.no_grad():
        model.coefficients.normal_()
    coords = torch.rand(100, 2)
    phi = model.basis.matrix(coords)  # (N, G^2), centre index iy * G + ix
    assert phi.shape == (100, 81)
    torch.testing.assert_close(phi @ model.coefficients.reshape(81, 3), model(coords), rtol=1e-5, atol=1e-5)


def test_rbf_reaches_fokr_settings_and_flushes_far_factors_to_zero():
    basis = RBFBasis(R.make_config("rbf", grid=14, width_in_spacings=2.6))  # FOKR: ℓ = 0.2 on 14 x 14 centres
    assert torch.nn.functional.softplus(basis.raw_width).item() == pytest.approx(0.2, rel=1e-5)
    fx, fy = RBFBasis(R.make_config("rbf")).axis_factors(torch.rand(500, 2))  # default ℓ = 0.7 / 63
    for factor in (fx, fy):
        assert ((factor > 0) & (factor < torch.finfo(factor.dtype).tiny)).sum() == 0  # 0, never a (slow) denormal
        assert (factor == 0).any() and factor.max() <= 1
