import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from fitbench import metrics
from fitbench.interpolation import INTERPOLATIONS, interpolate, resampling_matrix
from fitbench.protocol import coordinate_grid, make_split


def test_psnr_hand_case():
    a = np.zeros((4, 4, 1))
    b = np.full((4, 4, 1), 0.1)  # mse 0.01 -> 20 dB
    assert metrics.psnr(a, b) == pytest.approx(20.0)
    assert metrics.psnr(a, a) == metrics.MAX_PSNR
    assert metrics.psnr(a, np.full((4, 4, 1), 5.0)) == pytest.approx(0.0)  # clamped to 1 first


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_skimage(channels):
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.random((48, 40, channels)), 0), 1)
    truth = smooth / smooth.max()
    noisy = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1)
    expected = structural_similarity(truth, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1.0, channel_axis=2)
    assert metrics.ssim(truth, noisy) == pytest.approx(expected, abs=1e-6)
    assert metrics.ssim(truth, truth) == pytest.approx(1.0)


def test_alternate_split_and_grid():
    split = make_split("alternate", 6, 6)
    assert split.train.sum() == 9 and split.test.sum() == 9 and not (split.train & split.test).any()
    assert split.train[0, 0] and split.test[1, 1] and not split.train[0, 1]
    grid = coordinate_grid(2, 4)
    assert grid.tolist()[:5] == [[0.0, 0.0], [0.25, 0.0], [0.5, 0.0], [0.75, 0.0], [0.0, 0.5]]
    with pytest.raises(ValueError, match="choose from: alternate, full"):
        make_split("odd", 4, 4)


@pytest.mark.parametrize("mode", INTERPOLATIONS)
def test_interpolation_is_exact_on_a_linear_ramp(mode):
    ramp = (np.add.outer(np.arange(16), 2 * np.arange(16)) / 60.0)[..., None].astype(np.float32)
    split = make_split("alternate", 16, 16)
    out = interpolate(ramp, split, mode)
    assert np.allclose(out[split.train], ramp[split.train], atol=1e-6)
    inner = np.zeros_like(split.test)
    inner[4:-5, 4:-5] = split.test[4:-5, 4:-5]  # Lanczos-3 reaches three grid points either side: off the border
    tolerance = 2e-3 if mode == "lanczos3" else 1e-5  # normalised Lanczos is exact on constants, nearly on ramps
    assert np.allclose(out[inner], ramp[inner], atol=tolerance)


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolation_matches_torch_grid_sample(mode):
    """bilinear and bicubic (a = -0.75) are torch's own kernels: an independent implementation agrees."""
    image = np.random.default_rng(0).random((20, 18, 3)).astype(np.float32)
    grid = torch.from_numpy(image[::2, ::2].copy()).permute(2, 0, 1)[None].double()
    ys = torch.arange(20, dtype=torch.float64) / 2 / (grid.shape[-2] - 1) * 2 - 1
    xs = torch.arange(18, dtype=torch.float64) / 2 / (grid.shape[-1] - 1) * 2 - 1
    at = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)[None]
    expected = F.grid_sample(grid, at, mode=mode, padding_mode="border", align_corners=True)
    expected = expected[0].permute(1, 2, 0).clamp(0, 1).numpy()
    assert np.allclose(interpolate(image, make_split("alternate", 20, 18), mode), expected, atol=1e-6)


def test_keys_cubic_is_exact_on_a_quadratic_and_lanczos_weights_by_hand():
    """Keys' a = -0.5 reproduces quadratics (third-order accurate), a = -0.75 does not; a half-way Lanczos-3
    pixel weighs its six taps by sinc(d) sinc(d / 3) at d = 2.5, 1.5, 0.5, normalised."""
    x = np.arange(32) / 31.0
    quadratic = np.repeat((0.2 + 0.6 * x ** 2)[:, None, None], 32, axis=1).astype(np.float64)
    split = make_split("alternate", 32, 32)
    rows = slice(5, 25, 2)  # half-way rows, off the border
    keys = interpolate(quadratic, split, "bicubic_keys")[rows, 4, 0]
    opencv = interpolate(quadratic, split, "bicubic")[rows, 4, 0]
    assert np.allclose(keys, quadratic[rows, 4, 0], atol=1e-6)
    assert not np.allclose(opencv, quadratic[rows, 4, 0], atol=1e-5)
    distances = np.array([2.5, 1.5, 0.5, 0.5, 1.5, 2.5])
    weights = np.sinc(distances) * np.sinc(distances / 3)
    row = resampling_matrix(32, 16, "lanczos3")[15]  # pixel 15 sits at 7.5: taps 5..10
    assert np.allclose(row[5:11], weights / weights.sum()) and row.sum() == pytest.approx(1.0)
