"""Codecs, matched rates, Bjøntegaard deltas and the published reference, each checked against an answer known in
advance."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from fitbench.compression.bd import bd_psnr, bd_rate, pareto_front
from fitbench.compression.codecs import JPEG, JPEG444, JPEG2000, WebP, available_codecs, to_uint8
from fitbench.compression.published import COLUMNS, published_table
from fitbench.compression.report import bd_table, coder_table, matched_table, psnr_at


@pytest.fixture(scope="module")
def image8() -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:48] / 48
    smooth = np.stack([np.sin(6 * x), np.cos(5 * y), x * y], axis=-1) * 0.4 + 0.5
    return to_uint8(smooth + 0.03 * rng.standard_normal(smooth.shape))


@pytest.mark.parametrize("codec", [JPEG, JPEG444, WebP, JPEG2000])
def test_codecs_report_the_bytes_they_wrote_and_an_independent_psnr(codec, image8):
    point = codec(codec.qualities[len(codec.qualities) // 2]).run(image8)
    image = Image.fromarray(image8)
    written = codec(codec.qualities[len(codec.qualities) // 2]).encode(image)
    assert point.bytes == len(written) and point.bpp == pytest.approx(8 * len(written) / 48**2)
    decoded = np.asarray(Image.open(io.BytesIO(written)))
    assert point.psnr == pytest.approx(peak_signal_noise_ratio(image8, decoded, data_range=255), abs=1e-6)
    assert 0 < point.ssim <= 1


def test_the_two_jpegs_differ_in_chroma_subsampling_only(image8):
    from PIL import JpegImagePlugin

    for codec, sampling in ((JPEG, 2), (JPEG444, 0)):  # Pillow's codes: 2 = 4:2:0, 0 = 4:4:4
        decoded = Image.open(io.BytesIO(codec(75).encode(Image.fromarray(image8))))
        assert JpegImagePlugin.get_sampling(decoded) == sampling
    assert JPEG444(95).run(image8).psnr > JPEG(95).run(image8).psnr  # full chroma: better at high quality


def test_every_codec_names_its_library_and_version():
    from PIL import __version__

    for codec in available_codecs():
        library = codec.library()
        assert library.startswith(f"Pillow {__version__}, ") and any(ch.isdigit() for ch in library.split(", ")[1])
    assert "libjpeg" in JPEG.library() and "OpenJPEG" in JPEG2000.library() and "libwebp" in WebP.library()


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


@pytest.fixture(scope="module")
def jpeg_sweep() -> tuple[np.ndarray, np.ndarray]:
    """JPEG's whole quality sweep on a real image: the dense, slightly irregular anchor BD is used with."""
    from fitbench.datasets import load_images

    truth8 = to_uint8(load_images("builtin", 64, limit=2)[1].pixels)  # astronaut, built in
    bpp, psnr = [], []
    for quality in JPEG.qualities:
        data = JPEG(quality).encode(Image.fromarray(truth8))
        bpp.append(8 * len(data) / 64**2)
        psnr.append(peak_signal_noise_ratio(truth8, np.asarray(Image.open(io.BytesIO(data))), data_range=255))
    return np.array(bpp), np.array(psnr)


@pytest.mark.parametrize("qualities", [(10, 30, 50, 70), (5, 15, 30, 50, 75), (20, 40, 60, 80, 90), (2, 8, 95)])
def test_bd_recovers_an_exact_shift_of_jpeg_within_0_02_db_and_0_5_percent(jpeg_sweep, qualities):
    # The review's case: a few points that are exactly JPEG + 1 dB (or JPEG at 0.8x the rate) against JPEG's whole
    # 100-point sweep. One cubic through the sweep gave 1.05-1.25 dB and -20.6 to -23.0 %.
    bpp, psnr = pareto_front(*jpeg_sweep)
    index = [int(np.argmin(np.abs(bpp - jpeg_sweep[0][q - 1]))) for q in qualities]
    assert bd_psnr(bpp, psnr, bpp[index], psnr[index] + 1.0) == pytest.approx(1.0, abs=0.02)
    assert bd_rate(bpp, psnr, bpp[index] * 0.8, psnr[index]) == pytest.approx(-20.0, abs=0.5)
    assert bd_psnr(bpp[index], psnr[index] + 1.0, bpp, psnr) == pytest.approx(-1.0, abs=0.02)  # either way round


def test_bd_psnr_of_a_curve_shifted_up_is_the_shift():
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS + 1.25) == pytest.approx(1.25, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0, abs=1e-9)


def test_bd_rate_of_a_curve_with_rates_scaled_is_the_scale():
    assert bd_rate(RATES, PSNRS, RATES * 0.8, PSNRS) == pytest.approx(-20.0, abs=1e-6)
    assert bd_rate(RATES, PSNRS, RATES * 1.5, PSNRS) == pytest.approx(50.0, abs=1e-6)


def test_bd_uses_only_the_overlap_and_says_nan_without_one():
    # the test curve covers only the upper half of the anchor; on it the two are equal
    assert bd_psnr(RATES, PSNRS, RATES[2:], PSNRS[2:]) == pytest.approx(0, abs=1e-9)
    # a test curve 2 dB above on the overlap and 50 dB above beyond it: only the overlap counts
    beyond = np.r_[RATES[1:], 3.2, 6.4]
    assert bd_psnr(RATES, PSNRS, beyond, np.r_[PSNRS[1:] + 2, 80.0, 90.0]) == pytest.approx(2.0, abs=1e-9)
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


def test_psnr_at_a_rate_interpolates_on_the_front_and_is_nan_outside_it():
    curve = pd.DataFrame({"bpp": RATES, "psnr": PSNRS})
    assert psnr_at(curve, 0.4) == pytest.approx(PSNRS[2])
    assert PSNRS[1] < psnr_at(curve, 0.3) < PSNRS[2]
    assert np.isnan(psnr_at(curve, 0.05)) and np.isnan(psnr_at(curve, 2.0))


def test_coder_table_reports_the_ans_saving_against_the_best_byte_coder():
    rows = pd.DataFrame({"image": ["a", "a"], "method": ["rep", "rep"], "kind": ["representation"] * 2,
                         "quantizer": ["q8", "q8"], "coder": ["ans", "lzma"], "bytes_raw": [1000, 1000],
                         "bytes_zlib": [950, 900], "bytes_lzma": [900, 800], "bytes_ans": [810, 840]})
    table = coder_table(rows).set_index("method")
    assert table.loc["all", "streams"] == 2
    assert table.loc["all", "ans_vs_best_byte_coder_mean_%"] == pytest.approx((10.0 + -5.0) / 2)
    assert table.loc["all", "ans_vs_best_byte_coder_min_%"] == pytest.approx(-5.0)
    assert table.loc["all", "ans_chosen_%"] == pytest.approx(50.0)


def test_published_points_carry_method_dataset_bpp_psnr_and_source():
    table = published_table()
    assert list(table.columns) == COLUMNS == ["method", "dataset", "bpp", "psnr", "source"]
    assert {"COIN", "COIN++", "Strümpler et al.", "C3", "JPEG", "BPG"} <= set(table["method"])
    assert (table["dataset"] == "kodak").all() and table["source"].str.contains("c3_neural_compression").all()
    coin = table[table["method"] == "COIN"].set_index("bpp")["psnr"]
    assert coin[0.3074] == pytest.approx(26.41, abs=0.01)  # COIN (Dupont et al. 2021) on Kodak: 26.41 dB at 0.307 bpp
