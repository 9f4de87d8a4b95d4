"""fitbench.datasets: decoding, conversions, crop/resize, errors, builtin set, data root, downloads (offline)."""

from __future__ import annotations

import hashlib
import io
import struct
import urllib.error
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from fitbench.datasets import IMAGE_SETS, DatasetError, ImageSample, load_images, remote, resolve_data_root

RNG = np.random.default_rng(0)


def rgb(height: int = 24, width: int = 24) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def write_png16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit RGB PNG written by hand (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def load_one(path: Path, size: int = 16) -> ImageSample:
    (sample,) = load_images(str(path), size)
    return sample


def assert_valid(sample: ImageSample, size: int, channels: int) -> None:
    assert sample.pixels.shape == (size, size, channels)
    assert sample.pixels.dtype == np.float32
    assert 0.0 <= sample.pixels.min() and sample.pixels.max() <= 1.0


def error_of(spec: str, size: int = 16, **kwargs) -> str:
    with pytest.raises(DatasetError) as info:
        load_images(spec, size, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- modes and conversions -------------------------------------------------------------------------------


def _palette_with_transparency() -> Image.Image:
    image = Image.fromarray(rgb()).convert("P")
    image.info["transparency"] = 0
    return image


MODE_CASES = {
    # file name: (image, channels, expected note fragment or None)
    "rgb.png": (lambda: Image.fromarray(rgb()), 3, None),
    "gray.png": (lambda: Image.fromarray(rgb()).convert("L"), 1, None),
    "bilevel.png": (lambda: Image.fromarray(rgb()).convert("1"), 1, "1-bit -> L"),
    "la.png": (lambda: Image.fromarray(rgb()).convert("LA"), 1, "LA -> L (alpha dropped)"),
    "rgba.png": (lambda: Image.fromarray(rgb()).convert("RGBA"), 3, "RGBA -> RGB (alpha dropped)"),
    "palette.png": (lambda: Image.fromarray(rgb()).convert("P"), 3, "P -> RGB (palette expanded)"),
    "palette-alpha.png": (_palette_with_transparency, 3, "transparency dropped"),
    "cmyk.jpg": (lambda: Image.fromarray(rgb()).convert("CMYK"), 3, "CMYK -> RGB"),
    "ycbcr.tif": (lambda: Image.fromarray(rgb()).convert("YCbCr"), 3, "YCbCr -> RGB"),
    "gray16.png": (lambda: Image.fromarray(RNG.integers(0, 65536, (24, 24), dtype=np.uint16)), 1, "16-bit"),
    "int32.tif": (lambda: Image.fromarray(RNG.integers(-10, 70000, (24, 24), dtype=np.int32)), 1, "32-bit integer"),
    "float.tif": (lambda: Image.fromarray(RNG.normal(0.5, 1.0, (24, 24)).astype(np.float32)), 1, "clipped to [0, 1]"),
}


@pytest.mark.parametrize("file", MODE_CASES)
def test_modes_are_converted_with_a_note(tmp_path, file):
    make, channels, note = MODE_CASES[file]
    sample = load_one(save(make(), tmp_path / file))
    assert_valid(sample, 16, channels)
    assert sample.name == Path(file).stem and sample.source == str(tmp_path / file)
    if note is None:
        assert sample.notes == ()
    else:
        assert any(note in n for n in sample.notes), sample.notes


def test_16bit_values_are_scaled_by_65535(tmp_path):
    values = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16).repeat(4, 0).repeat(4, 1)
    sample = load_one(save(Image.fromarray(values), tmp_path / "g16.png"), size=8)
    np.testing.assert_allclose(sample.pixels[..., 0], values / 65535, atol=1e-6)


def test_16bit_colour_png_is_flagged(tmp_path):
    pixels = RNG.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    sample = load_one(write_png16(tmp_path / "rgb16.png", pixels), size=8)
    assert_valid(sample, 8, 3)
    assert any("16-bit colour PNG" in n for n in sample.notes)
    np.testing.assert_allclose(sample.pixels, pixels / 65535, atol=1 / 255)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((16, 16), dtype=np.uint8)
    pixels[:8] = 255  # top half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    sample = load_one(save(Image.fromarray(pixels), tmp_path / "photo.jpg", exif=exif, quality=100))
    assert "EXIF orientation 6 applied" in sample.notes
    assert sample.pixels[:, -4:].mean() > 0.9 and sample.pixels[:, :4].mean() < 0.1  # white is now on the right


def test_no_resize_is_exact_and_centre_crop(tmp_path):
    pixels = rgb(16, 16)
    np.testing.assert_array_equal(load_one(save(Image.fromarray(pixels), tmp_path / "a.png")).pixels, pixels / np.float32(255))
    wide = np.zeros((10, 30, 3), dtype=np.uint8)
    wide[:, 10:20] = 200  # the centre square is uniformly 200
    sample = load_one(save(Image.fromarray(wide), tmp_path / "wide.png"), size=5)
    np.testing.assert_allclose(sample.pixels, 200 / 255, atol=1e-6)


def test_downscale_is_antialiased(tmp_path):
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)  # 1-pixel checkerboard, mean 0.5
    sample = load_one(save(Image.fromarray(checker), tmp_path / "checker.png"), size=16)
    np.testing.assert_allclose(sample.pixels, 0.5, atol=0.05)


# --- errors ----------------------------------------------------------------------------------------------


def test_too_small_image(tmp_path):
    path = save(Image.fromarray(rgb(12, 20)), tmp_path / "small.png")
    message = error_of(str(path), size=16)
    assert str(path) in message and "20x12" in message and "--size" in message


@pytest.mark.parametrize("file", ["truncated.png", "truncated.jpg", "text.png"])
def test_corrupt_files(tmp_path, monkeypatch, file):
    path = tmp_path / file
    if file == "text.png":
        path.write_text("this is not an image\n")
    else:
        buffer = io.BytesIO()
        Image.fromarray(rgb(64, 64)).save(buffer, format=path.suffix[1:].replace("jpg", "jpeg"))
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some other library might leave it
    message = error_of(str(path))
    assert str(path) in message and "remove or replace" in message
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored


def test_corrupt_file_in_folder(tmp_path):
    save(Image.fromarray(rgb()), tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    message = error_of(str(tmp_path))
    assert str(tmp_path / "b.png") in message


def test_unsupported_mode(tmp_path):
    path = save(Image.new("LAB", (24, 24)), tmp_path / "lab.tif")
    message = error_of(str(path))
    assert str(path) in message and "LAB" in message


def test_empty_folder_and_folder_without_images(tmp_path):
    message = error_of(str(tmp_path))
    assert str(tmp_path) in message and ".png" in message and ".jpeg" in message
    (tmp_path / "notes.txt").write_text("hi")
    assert ".jpg" in error_of(str(tmp_path))


def test_unknown_spec():
    message = error_of("no-such-set")
    assert "no-such-set" in message and all(name in message for name in IMAGE_SETS) and "folder" in message


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"size": 16, "limit": 0}])
def test_bad_size_or_limit(kwargs):
    with pytest.raises(DatasetError):
        load_images("builtin", **kwargs)


# --- folders ---------------------------------------------------------------------------------------------


def test_folder_sorted_case_insensitive_mixed_channels_and_limit(tmp_path):
    save(Image.fromarray(rgb()), tmp_path / "c.JPEG")
    save(Image.fromarray(rgb()).convert("L"), tmp_path / "a.PNG")
    save(Image.fromarray(rgb()), tmp_path / "b.jpg")
    (tmp_path / "readme.txt").write_text("not an image")
    samples = load_images(str(tmp_path), 16)
    assert [s.name for s in samples] == ["a", "b", "c"]
    assert [s.pixels.shape[2] for s in samples] == [1, 3, 3]
    assert [s.name for s in load_images(str(tmp_path), 16, limit=2)] == ["a", "b"]


def test_same_stem_different_extension_keeps_names_unique(tmp_path):
    save(Image.fromarray(rgb()), tmp_path / "x.png")
    save(Image.fromarray(rgb()), tmp_path / "x.jpg")
    assert [s.name for s in load_images(str(tmp_path), 16)] == ["x.jpg", "x.png"]


# --- builtin ---------------------------------------------------------------------------------------------


def test_builtin():
    samples = load_images("builtin", 32)
    assert [s.name for s in samples[:5]] == ["camera", "astronaut", "coffee", "chelsea", "rocket"]
    for sample in samples:
        assert_valid(sample, 32, 1 if sample.name == "camera" else 3)
        assert sample.source == f"skimage.data.{sample.name}"
    assert [s.name for s in load_images("builtin", 32, limit=1)] == ["camera"]
    assert "chelsea" in error_of("builtin", size=400)  # 451x300: never upscaled


# --- data root -------------------------------------------------------------------------------------------


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.delenv("FITBENCH_DATA_ROOT", raising=False)
    assert resolve_data_root() == Path.home() / ".cache" / "fitbench" / "data"
    monkeypatch.setenv("FITBENCH_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root() == tmp_path / "env"
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root(str(tmp_path / "arg")) == tmp_path / "arg"


# --- FFN sets: manifest, download (offline), verification --------------------------------------------------


def sha(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def serve(monkeypatch, payload: bytes | Exception) -> list[str]:
    """Replace the network: every URL answers ``payload`` (or raises it); returns the URLs asked for."""
    asked: list[str] = []

    def fake_open(url: str):
        asked.append(url)
        if isinstance(payload, Exception):
            raise payload
        return io.BytesIO(payload)

    monkeypatch.setattr(remote, "_open_url", fake_open)
    return asked


@pytest.fixture
def tiny_ffn(monkeypatch):
    """A manifest of two 8x8 'natural' images; returns them."""
    images = RNG.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    real = remote._ffn_manifest()
    manifest = {
        "shape": [8, 8, 3],
        "sets": {"natural": dict(real["sets"]["natural"], sha256={f"{i:02d}.png": sha(im) for i, im in enumerate(images)})},
    }
    monkeypatch.setattr(remote, "_ffn_manifest", lambda: manifest)
    return images


def test_manifest_is_shipped_and_complete():
    manifest = remote._ffn_manifest()
    assert manifest["shape"] == [512, 512, 3]
    sets = (("natural", "data_div2k.npz"), ("text", "data_2d_text.npz"), ("natural_test", "data_div2k.npz"),
            ("text_test", "data_2d_text.npz"))
    assert sorted(manifest["sets"]) == sorted(kind for kind, _ in sets)
    digests = [d for entry in manifest["sets"].values() for d in entry["sha256"].values()]
    assert len(set(digests)) == 64  # the tuning and test images are 64 different images
    for kind, archive in sets:
        entry = manifest["sets"][kind]
        assert entry["archive"] == archive and entry["url"].startswith("https://")
        assert sorted(entry["sha256"]) == [f"{i:02d}.png" for i in range(16)]
        assert all(len(d) == 64 for d in entry["sha256"].values())


def test_ffn_download_picks_the_matching_split(tmp_path, monkeypatch, tiny_ffn):
    decoy = RNG.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    asked = serve(monkeypatch, npz_bytes(train_data=decoy, test_data=tiny_ffn))
    samples = load_images("ffn-natural", 4, data_root=tmp_path)
    assert asked == [remote._ffn_manifest()["sets"]["natural"]["url"]]
    assert [s.name for s in samples] == ["natural-00", "natural-01"]
    assert_valid(samples[0], 4, 3)
    folder = tmp_path / "ffn" / "natural"
    np.testing.assert_array_equal(np.asarray(Image.open(folder / "01.png")), tiny_ffn[1])
    assert (tmp_path / "ffn" / "data_div2k.npz").is_file()
    assert sorted(p.name for p in (tmp_path / "ffn").rglob("*")) == ["00.png", "01.png", "data_div2k.npz", "natural"]

    # Later runs work offline: from the PNGs, and from the kept archive when a PNG was deleted.
    serve(monkeypatch, urllib.error.URLError("offline"))
    (folder / "00.png").unlink()
    assert [s.name for s in load_images("ffn-natural", 8, data_root=tmp_path, limit=1)] == ["natural-00"]


def test_ffn_checksum_mismatch(tmp_path, monkeypatch, tiny_ffn):
    url = remote._ffn_manifest()["sets"]["natural"]["url"]
    serve(monkeypatch, npz_bytes(train_data=255 - tiny_ffn))
    message = error_of("ffn-natural", data_root=tmp_path)
    assert "checksum mismatch" in message and url in message
    assert not any((tmp_path / "ffn").rglob("*.p*")), "a rejected download leaves nothing behind"


def test_ffn_download_not_an_npz(tmp_path, monkeypatch, tiny_ffn):
    serve(monkeypatch, b"<html>Google Drive can't scan this file</html>")
    assert "not a readable npz" in error_of("ffn-natural", data_root=tmp_path)


def test_ffn_corrupt_kept_archive(tmp_path, monkeypatch, tiny_ffn):
    archive = tmp_path / "ffn" / "data_div2k.npz"
    archive.parent.mkdir()
    archive.write_bytes(b"PK broken")
    asked = serve(monkeypatch, urllib.error.URLError("offline"))
    message = error_of("ffn-natural", data_root=tmp_path)
    assert str(archive) in message and "not a readable npz" in message and asked == []


@pytest.mark.parametrize("offline", ["network", "disabled"])
def test_ffn_missing_files_message(tmp_path, monkeypatch, tiny_ffn, offline):
    asked = serve(monkeypatch, urllib.error.URLError("no route to host"))
    message = error_of("ffn-natural", data_root=tmp_path, allow_download=offline == "network")
    folder = tmp_path / "ffn" / "natural"
    for fragment in (str(folder), "00.png", "--data-root", "FITBENCH_DATA_ROOT", remote._ffn_manifest()["sets"]["natural"]["url"]):
        assert fragment in message
    assert ("no route to host" in message) == (offline == "network") and len(asked) == (offline == "network")


def test_ffn_tampered_file(tmp_path, monkeypatch, tiny_ffn):
    folder = tmp_path / "ffn" / "natural"
    save(Image.fromarray(tiny_ffn[0]), folder / "00.png")
    save(Image.fromarray(255 - tiny_ffn[1]), folder / "01.png")
    message = error_of("ffn-natural", size=8, data_root=tmp_path)
    assert str(folder / "01.png") in message and "sha256" in message


def test_real_ffn_sets(shared_data):
    for kind in ("natural", "text", "natural-test", "text-test"):
        samples = load_images(f"ffn-{kind}", 512, data_root=shared_data, allow_download=False)
        assert [s.name for s in samples] == [f"{kind}-{i:02d}" for i in range(16)]
        assert all(s.pixels.shape == (512, 512, 3) and s.notes == () for s in samples)


def test_real_manifest_through_the_download_path(tmp_path, monkeypatch, shared_data):
    """An npz built from the local PNGs goes through download, split matching and extraction."""
    source = shared_data / "ffn" / "natural"
    images = np.stack([np.asarray(Image.open(source / f"{i:02d}.png")) for i in range(16)])
    serve(monkeypatch, npz_bytes(train_data=images, test_data=images[::-1].copy()))
    samples = load_images("ffn-natural", 64, data_root=tmp_path, limit=2)
    assert [s.name for s in samples] == ["natural-00", "natural-01"]
    assert len(list((tmp_path / "ffn" / "natural").glob("*.png"))) == 16


def test_ffn_test_set_comes_from_the_same_archive(tmp_path, monkeypatch, tiny_ffn):
    """ffn-natural-test is the archive's other split: matched by checksum, saved in its own folder."""
    held_out = RNG.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    manifest = remote._ffn_manifest()
    manifest["sets"]["natural_test"] = dict(manifest["sets"]["natural"],
                                            sha256={f"{i:02d}.png": sha(im) for i, im in enumerate(held_out)})
    asked = serve(monkeypatch, npz_bytes(train_data=tiny_ffn, test_data=held_out))
    samples = load_images("ffn-natural-test", 8, data_root=tmp_path)
    assert [s.name for s in samples] == ["natural-test-00", "natural-test-01"] and len(asked) == 1
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "ffn" / "natural_test" / "01.png")), held_out[1])
    assert not (tmp_path / "ffn" / "natural").exists()  # only the set asked for is written


# --- Kodak (offline) -------------------------------------------------------------------------------------


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_kodak_download(tmp_path, monkeypatch):
    asked = serve(monkeypatch, png_bytes(rgb(512, 768)))
    samples = load_images("kodak", 64, data_root=tmp_path, limit=2)
    assert [s.name for s in samples] == ["kodim01", "kodim02"]
    assert asked == ["http://r0k.us/graphics/kodak/kodak/kodim01.png", "http://r0k.us/graphics/kodak/kodak/kodim02.png"]
    assert sorted(p.name for p in (tmp_path / "kodak").iterdir()) == ["kodim01.png", "kodim02.png"]
    assert_valid(samples[1], 64, 3)


@pytest.mark.parametrize("payload", [png_bytes(rgb(100, 100)), b"not a png", urllib.error.URLError("offline")])
def test_kodak_bad_download(tmp_path, monkeypatch, payload):
    serve(monkeypatch, payload)
    message = error_of("kodak", data_root=tmp_path, limit=1)
    folder = tmp_path / "kodak"
    assert str(folder / "kodim01.png") in message and "FITBENCH_DATA_ROOT" in message
    assert not folder.exists() or not any(folder.iterdir())
