"""Codecs, matched rates and Bjøntegaard deltas, each checked against an answer known in advance."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from fitbench.compression.bd import bd_psnr, bd_rate, pareto_front
from fitbench.compression.codecs import JPEG, JPEG2000, WebP, available_codecs, to_uint8
from fitbench.compression.report import bd_table, matched_table


@pytest.fixture(scope="module")
def image8() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48] / 48
    smooth = np.stack([np.sin(6 * x), np.cos(5 * y), x * y], axis=-1) * 0.4 + 0.5
    return to_uint8(smooth + 0.03 * rng.standard_normal(smooth.shape))


@pytest.mark.parametrize("codec", [JPEG, WebP, JPEG2000])
def test_codecs_report_the_bytes_they_wrote_and_an_independent_psnr(codec, image8):
    point = codec(codec.qualities[len(codec.qualities) // 2]).run(image8)
    image = Image.fromarray(image8)
    written = codec(codec.qualities[len(codec.qualities) // 2]).encode(image)
    assert point.bytes == len(written) and point.bpp == pytest.approx(8 * len(written) / 48**2)
    decoded = np.asarray(Image.open(io.BytesIO(written)))
    assert point.psnr == pytest.approx(peak_signal_noise_ratio(image8, decoded, data_range=255), abs=1e-6)
    assert 0 < point.ssim <= 1


def test_jpeg_rate_and_quality_rise_with_its_quality_setting(image8):
    low, high = JPEG(10).run(image8), JPEG(90).run(image8)
    assert low.bytes < high.bytes and low.psnr < high.psnr


def test_grayscale_images_are_coded_as_one_channel(image8):
    gray = image8[..., :1]
    for codec in available_codecs():
        point = codec(codec.qualities[-1]).run(gray)
        assert point.psnr > 20


def points(rows):
    return pd.DataFrame(rows, columns=["image", "method", "kind", "config", "quantizer", "bytes", "bpp", "psnr"])


def test_matched_rate_takes_the_largest_jpeg_not_above_the_target():
    jpeg = [("a", "jpeg", "codec", f"q={q}", "", size, size / 100, psnr)
            for q, size, psnr in [(10, 100, 25.0), (20, 150, 27.0), (30, 200, 29.0), (40, 260, 30.0)]]
    jpeg += [("b", "jpeg", "codec", "q=10", "", 140, 1.4, 40.0)]  # another image must not be matched
    reps = [("a", "siren", "representation", "w=8", "q8", 199, 1.99, 28.0),
            ("a", "siren", "representation", "w=9", "q8", 200, 2.00, 30.5),
            ("a", "siren", "representation", "w=2", "q8", 99, 0.99, 20.0)]
    matched = matched_table(points(jpeg + reps))
    assert matched["jpeg_quality"].tolist() == ["q=20", "q=30", ""]
    assert matched["jpeg_bytes"].tolist()[:2] == [150, 200]
    assert matched["delta_psnr"].tolist()[:2] == pytest.approx([1.0, 1.5])
    assert np.isnan(matched["delta_psnr"].iloc[2])  # smaller than JPEG's smallest file: no match, not a guess


RATES = np.array([0.1, 0.2, 0.4, 0.8, 1.6])
PSNRS = 25 + 4 * np.log2(RATES / 0.1) - 0.2 * np.log2(RATES / 0.1) ** 2  # concave, like a real RD curve


def test_bd_psnr_of_a_curve_shifted_up_is_the_shift():
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS + 1.25) == pytest.approx(1.25, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0, abs=1e-9)


def test_bd_rate_of_a_curve_with_rates_scaled_is_the_scale():
    assert bd_rate(RATES, PSNRS, RATES * 0.8, PSNRS) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(RATES, PSNRS, RATES * 1.5, PSNRS) == pytest.approx(50.0, abs=1e-6)


def test_bd_uses_only_the_overlap_and_says_nan_without_one():
    # the test curve covers only the upper half of the anchor; on it the two are equal
    assert bd_psnr(RATES, PSNRS, RATES[2:], PSNRS[2:]) == pytest.approx(0, abs=0.05)
    assert np.isnan(bd_psnr(RATES[:2], PSNRS[:2], RATES[3:], PSNRS[3:]))
    assert np.isnan(bd_rate(RATES, PSNRS, RATES, PSNRS + 100))


def test_pareto_front_drops_dominated_points():
    bpp, psnr = pareto_front(np.array([0.5, 0.1, 0.3, 0.3, 0.9]), np.array([30.0, 20.0, 31.0, 25.0, 29.0]))
    assert bpp.tolist() == [0.1, 0.3] and psnr.tolist() == [20.0, 31.0]


def test_bd_table_against_jpeg_averages_over_images():
    rows = []
    for image, shift in (("a", 1.0), ("b", 2.0)):
        rows += [(image, "jpeg", "codec", f"q={i}", "", 0, r, p) for i, (r, p) in enumerate(zip(RATES, PSNRS))]
        rows += [(image, "rep", "representation", f"s{i}", "q8", 0, r, p + shift)
                 for i, (r, p) in enumerate(zip(RATES, PSNRS))]
    table = bd_table(points(rows))
    assert table.set_index("method").loc["rep", "bd_psnr_db"] == pytest.approx(1.5)
    assert table.set_index("method").loc["rep", "bd_rate_percent"] < 0
