"""The compression suite end to end on the smoke preset: every output, the round trip, --decode, resume, errors."""

import json

import numpy as np
import pandas as pd
import pytest

from fitbench import representations as R
from fitbench.compression.bitstream import decode_stream
from fitbench.compression.codecs import score_point, to_uint8
from fitbench.datasets import load_images
from fitbench.figures import load_png


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run shared by the tests below (it is the slow part)."""
    from fitbench.cli import main

    out = tmp_path_factory.mktemp("compression")
    assert main(["--suite", "compression", "--preset", "smoke", "--out", str(out)]) == 0
    return out / "compression"


def test_smoke_writes_every_output_for_every_representation(smoke):
    points = pd.read_csv(smoke / "points.csv")
    assert {"image", "method", "config", "bytes", "bpp", "psnr", "ssim"} <= set(points.columns)
    representations = set(R.list_representations())
    assert set(points.loc[points["kind"] == "representation", "method"]) == representations
    assert {"jpeg", "webp"} <= set(points["method"])
    assert (points["bpp"] == 8 * points["bytes"] / 32**2).all()
    assert set(points["quantizer"].dropna()) == {"fp16", "q8"}
    matched = pd.read_csv(smoke / "matched.csv")
    assert len(matched) == (points["kind"] == "representation").sum()
    assert set(pd.read_csv(smoke / "bd.csv")["method"]) == (representations | {"webp", "jpeg2000"})
    for method in representations | {"jpeg", "webp"}:
        payload = json.loads((smoke / "json" / f"{method}.json").read_text())
        assert payload["name"] == method and len(payload["results"]["bpp"]) == len(payload["results"]["psnr-rgb"]) > 0
    assert (smoke / "rd.png").stat().st_size > 10_000


def test_psnr_from_the_decoded_stream_equals_the_reported_one(smoke):
    points = pd.read_csv(smoke / "points.csv")
    image = load_images("builtin", 32, limit=1)[0]
    rows = points[points["kind"] == "representation"]
    assert len(rows) == 2 * 2 * len(R.list_representations())
    for _, row in rows.iterrows():
        data = (smoke / row["stream"]).read_bytes()
        assert len(data) == row["bytes"]
        reconstruction = decode_stream(data).reconstruct()
        rescored = score_point("", len(data), to_uint8(image.pixels), reconstruction, 0, 0)
        assert rescored.psnr == pytest.approx(row["psnr"], abs=1e-9)
        assert rescored.ssim == pytest.approx(row["ssim"], abs=1e-9)


def test_decode_flag_prints_the_header_and_writes_the_reconstruction(smoke, run_cli):
    stream = next((smoke / "streams").rglob("*q8.fbi"))
    code, out, _ = run_cli("--suite", "compression", "--decode", stream)
    assert code == 0 and "q8" in out and "32x32" in out
    png = stream.with_suffix(".fbi.png")
    expected = to_uint8(decode_stream(stream.read_bytes()).reconstruct())
    assert np.array_equal(to_uint8(load_png(png)), expected)


def test_decode_flag_says_one_clear_line_for_a_damaged_or_missing_file(smoke, run_cli, tmp_path):
    stream = next((smoke / "streams").rglob("*.fbi")).read_bytes()
    damaged = tmp_path / "damaged.fbi"
    damaged.write_bytes(stream[: len(stream) // 2])
    code, _, err = run_cli("--suite", "compression", "--decode", damaged)
    assert code == 2 and err.startswith(f"error: --decode {damaged}: damaged stream") and err.count("\n") == 1
    code, _, err = run_cli("--suite", "compression", "--decode", tmp_path / "missing.fbi")
    assert code == 2 and "cannot read it" in err


def test_rerun_resumes_and_keeps_what_is_there(smoke, run_cli):
    before = (smoke / "points.jsonl").read_text()
    code, _, err = run_cli("--suite", "compression", "--preset", "smoke", "--out", smoke.parent)
    assert code == 0 and "resuming: 15 of 15 runs already finished" in err.replace(
        str(len(R.list_representations()) * 2 + 3), "15")
    assert (smoke / "points.jsonl").read_text() == before


@pytest.mark.parametrize("args, message", [
    (["--quantizers", "q3"], "unknown quantizer 'q3'"),
    (["--qat-steps", "-1"], "--qat-steps must be at least 0"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--set", "siren.widht=3"], "siren has no setting widht"),
])
def test_bad_input_is_one_error_line(run_cli, tmp_path, args, message):
    code, _, err = run_cli("--suite", "compression", "--preset", "smoke", "--out", tmp_path, *args)
    assert code == 2 and message in err
    assert not (tmp_path / "compression" / "points.jsonl").exists()


def test_quantization_aware_tuning_runs_and_keeps_the_stream_decodable(run_cli, tmp_path):
    args = ["--suite", "compression", "--preset", "smoke", "--reps", "siren", "--quantizers", "q5", "--out", tmp_path]
    assert run_cli(*args, "--qat-steps", "20")[0] == 0
    points = pd.read_csv(tmp_path / "compression" / "points.csv")
    rows = points[points["method"] == "siren"]
    assert set(rows["quantizer"]) == {"q5"} and len(rows) == 2
    for stream in rows["stream"]:
        decode_stream((tmp_path / "compression" / stream).read_bytes())
