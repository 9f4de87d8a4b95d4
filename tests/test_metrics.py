import numpy as np
import pytest
from skimage.metrics import structural_similarity

from fitbench import metrics
from fitbench.interpolation import interpolate
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


@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_interpolation_is_exact_on_a_linear_ramp(mode):
    ramp = (np.add.outer(np.arange(16), 2 * np.arange(16)) / 60.0)[..., None].astype(np.float32)
    split = make_split("alternate", 16, 16)
    out = interpolate(ramp, split, mode)
    assert np.allclose(out[split.train], ramp[split.train], atol=1e-6)
    inner = np.zeros_like(split.test)
    inner[2:-3, 2:-3] = split.test[2:-3, 2:-3]  # bicubic reaches two grid points either side; keep off the border
    assert np.allclose(out[inner], ramp[inner], atol=1e-5)
