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
    assert {"image", "method", "config", "bytes", "bpp", "psnr", "ssim", "coder", "bytes_ans"} <= set(points.columns)
    representations = set(R.list_representations())
    assert set(points.loc[points["kind"] == "representation", "method"]) == representations
    codecs = {"jpeg", "jpeg444", "webp", "jpeg2000"}
    assert codecs <= set(points["method"])
    assert (points["bpp"] == 8 * points["bytes"] / 32**2).all()
    rows = points[points["kind"] == "representation"]
    assert set(rows["quantizer"]) == {"fp16", "q8"}
    assert rows["bytes"].equals(rows[[f"bytes_{c}" for c in ("raw", "zlib", "lzma", "ans")]].min(axis=1)
                                .astype(rows["bytes"].dtype))  # best = the smallest coder, measured per stream
    matched = pd.read_csv(smoke / "matched.csv")
    assert len(matched) == len(rows)
    assert set(pd.read_csv(smoke / "bd.csv")["method"]) == (representations | codecs) - {"jpeg"}
    summary = pd.read_csv(smoke / "summary.csv")
    assert {f"{m}@{r}" for m in ("psnr", *codecs) for r in ("0.1", "0.2", "0.3", "0.5")} <= set(summary.columns)
    assert list(pd.read_csv(smoke / "published.csv").columns) == ["method", "dataset", "bpp", "psnr", "source"]
    assert len(pd.read_csv(smoke / "coders.csv")) > 0
    for method in representations | {"jpeg", "webp"}:
        payload = json.loads((smoke / "json" / f"{method}.json").read_text())
        assert payload["name"] == method and len(payload["results"]["bpp"]) == len(payload["results"]["psnr-rgb"]) > 0
    assert (smoke / "rd.png").stat().st_size > 10_000


def test_every_record_names_the_library_that_wrote_its_bytes(smoke):
    records = [json.loads(line) for line in (smoke / "points.jsonl").read_text().splitlines()]
    for record in records:
        if record["kind"] == "codec":
            assert record["library"].startswith("Pillow ")
        else:
            assert record["library"].startswith("fitbench stream format 2, torch ") and "constriction" in record["library"]


def test_psnr_from_the_decoded_stream_equals_the_reported_one(smoke):
    points = pd.read_csv(smoke / "points.csv")
    image = load_images("builtin", 32, limit=1)[0]
    rows = points[points["kind"] == "representation"]
    assert len(rows) >= 2 * len(R.list_representations())  # every representation, one or two sizes x 2 quantizers
    for _, row in rows.iterrows():
        data = (smoke / row["stream"]).read_bytes()
        assert len(data) == row["bytes"]
        reconstruction = decode_stream(data).reconstruct()
        rescored = score_point("", len(data), to_uint8(image.pixels), reconstruction, 0, 0)
        assert rescored.psnr == pytest.approx(row["psnr"], abs=1e-9)
        assert rescored.ssim == pytest.approx(row["ssim"], abs=1e-9)


def test_decode_flag_prints_the_header_and_writes_the_reconstruction_under_out(smoke, run_cli, tmp_path):
    stream = next((smoke / "streams").rglob("*_q8-*.fbi"))  # KEY-SETTING made a safe name
    before = sorted(stream.parent.iterdir())
    code, out, _ = run_cli("--suite", "compression", "--decode", stream, "--out", tmp_path)
    assert code == 0 and "q8" in out and "32x32" in out
    png = tmp_path / "compression" / "decoded" / f"{stream.name}.png"
    expected = to_uint8(decode_stream(stream.read_bytes()).reconstruct())
    assert np.array_equal(to_uint8(load_png(png)), expected)
    assert sorted(stream.parent.iterdir()) == before  # nothing written beside the stream


def test_decode_flag_says_one_clear_line_for_a_damaged_missing_or_unreadable_path(smoke, run_cli, tmp_path):
    stream = next((smoke / "streams").rglob("*.fbi")).read_bytes()
    damaged = tmp_path / "damaged.fbi"
    damaged.write_bytes(stream[: len(stream) // 2])
    out = ["--out", tmp_path / "out"]
    code, _, err = run_cli("--suite", "compression", "--decode", damaged, *out)
    assert code == 2 and error_lines(err) == [f"error: --decode {damaged}: damaged stream: checksum mismatch "
                                              "(truncated or altered bytes)"]
    for path, message in ((tmp_path / "missing.fbi", "cannot read it (No such file"),
                          (tmp_path, "cannot read it (Is a directory")):
        code, _, err = run_cli("--suite", "compression", "--decode", path, *out)
        assert code == 2 and len(error_lines(err)) == 1 and message in error_lines(err)[0]
    good = tmp_path / "good.fbi"
    good.write_bytes(stream)
    (tmp_path / "blocked" / "compression" / "decoded" / "good.fbi.png").mkdir(parents=True)  # the target is a folder
    code, _, err = run_cli("--suite", "compression", "--decode", good, "--out", tmp_path / "blocked")
    assert code == 2 and len(error_lines(err)) == 1 and "cannot write" in error_lines(err)[0]


def error_lines(stderr: str) -> list[str]:
    """The error lines (another part of the CLI may add a warning line of its own)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_rerun_resumes_and_keeps_what_is_there(smoke, run_cli):
    before = (smoke / "points.jsonl").read_text()
    code, _, err = run_cli("--suite", "compression", "--preset", "smoke", "--out", smoke.parent)
    total = len(before.splitlines())  # one record per run
    assert code == 0 and f"resuming: {total} of {total} runs already finished" in err
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
    assert run_cli(*args, "--qat-steps", "20", "--coder", "ans")[0] == 0
    points = pd.read_csv(tmp_path / "compression" / "points.csv")
    rows = points[points["method"] == "siren"]
    assert set(rows["quantizer"]) == {"q5"} and len(rows) == 2 and set(rows["coder"]) == {"ans"}
    for stream in rows["stream"]:
        decode_stream((tmp_path / "compression" / stream).read_bytes())


def test_a_rate_a_size_knob_cannot_reach_is_named_not_fitted_at_a_clamped_size():
    from fitbench.compression.ladder import ladder

    sizes = ladder("siren", {"depth": 2}, 3, 32 * 32, (0.001, 4.0), bits=16)
    assert len(sizes.sizes) == 1 and sizes.sizes[0]["width"] > 2
    assert len(sizes.unreachable) == 1
    assert "siren: 0.001 bpp needs about 0 parameters" in sizes.unreachable[0]
    assert "size knob width in 2..512 gives" in sizes.unreachable[0] and "skipped" in sizes.unreachable[0]


def test_the_recipe_decays_the_learning_rate_of_representations_without_a_schedule_of_their_own():
    from fitbench.suites.compression import COMPRESSION_PRESETS, recipe_settings

    preset = COMPRESSION_PRESETS["smoke"]
    for name in R.list_representations():
        own = R.make_config(name, **preset.overrides_for(name)).schedule
        chosen = R.make_config(name, **recipe_settings(name, preset, {})).schedule
        assert chosen == (own if own != "constant" else "cosine")
    assert recipe_settings("siren", preset, {"schedule": "constant"})["schedule"] == "constant"  # --set wins


def test_full_size_presets_read_each_image_at_its_own_shape(tmp_path):
    from PIL import Image

    from fitbench.datasets import load_images
    from fitbench.suites.compression import full_size_images

    Image.fromarray(np.full((48, 80, 3), 128, np.uint8)).save(tmp_path / "wide.png")
    square = load_images(str(tmp_path), 32)
    assert square[0].pixels.shape == (32, 32, 3)
    assert full_size_images(square)[0].pixels.shape == (48, 80, 3)
    with pytest.raises(ValueError, match="file-based image set"):
        full_size_images(load_images("builtin", 16, limit=1))



def test_an_absolute_image_path_writes_only_under_out_and_a_failed_run_exits_1(run_cli, tmp_path, monkeypatch):
    from PIL import Image

    from fitbench.compression import runs

    images = tmp_path / "my photos"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)).save(images / "a b.png")
    encode, calls = runs.encode_model, []

    def first_call_fails(*args, **kwargs):  # the first of the two ladder sizes fails, the second is written
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected encoder failure")
        return encode(*args, **kwargs)

    monkeypatch.setattr(runs, "encode_model", first_call_fails)
    out = tmp_path / "out"
    code, _, err = run_cli("--suite", "compression", "--preset", "smoke", "--reps", "relu_mlp", "--quantizers", "q8",
                           "--qat-steps", "0", "--images", images.resolve(), "--out", out)
    assert code == 1
    assert [line for line in error_lines(err) if "injected" in line] == [
        "error: relu_mlp on a b: RuntimeError: injected encoder failure"]
    assert "1 run(s) failed" in err
    assert sorted(p.name for p in images.iterdir()) == ["a b.png"]  # nothing beside the user's images
    streams = pd.read_csv(out / "compression" / "points.csv")["stream"].dropna()
    assert len(streams) == 1
    for stream in streams:  # the image set is an absolute path with a space; the setting has "=" and a space
        path = (out / "compression" / stream).resolve()
        assert path.is_file() and path.is_relative_to(out.resolve()) and " " not in stream and "=" not in stream
