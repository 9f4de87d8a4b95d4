"""Throughput of the hot paths: every representation's forward and forward+backward, the metrics, the codecs.

Save a baseline with `--benchmark-autosave` and compare a later commit with `--benchmark-compare` (docs/tracking.md).
"""

import numpy as np
import pytest
import torch

from fitbench import metrics, representations
from fitbench.compression import bitstream, codecs, quantize

BATCH = 4096  # coordinates per call: a 64^2 image, the CI preset's size
REPRESENTATIONS = representations.list_representations()


def model_and_batch(name: str):
    torch.manual_seed(0)
    model = representations.build(name, out_features=3)  # the representation's own defaults
    return model, torch.rand(BATCH, 2), torch.rand(BATCH, 3)


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_forward(benchmark, name):
    model, coords, _ = model_and_batch(name)
    with torch.no_grad():
        out = benchmark(model, coords)
    assert out.shape == (BATCH, 3)


@pytest.mark.parametrize("name", REPRESENTATIONS)
def test_forward_backward(benchmark, name):
    model, coords, target = model_and_batch(name)

    def step():
        model.zero_grad(set_to_none=True)
        loss = torch.mean((model(coords) - target) ** 2)
        loss.backward()
        return loss

    assert torch.isfinite(benchmark(step))


def test_psnr_256(benchmark, image256):
    noisy = np.clip(image256 + np.random.default_rng(0).normal(0, 0.05, image256.shape), 0, 1).astype(np.float32)
    assert 20 < benchmark(metrics.psnr, image256, noisy) < 30


def test_ssim_256(benchmark, image256):
    noisy = np.clip(image256 + np.random.default_rng(0).normal(0, 0.05, image256.shape), 0, 1).astype(np.float32)
    assert 0 < benchmark(metrics.ssim, image256, noisy) < 1




@pytest.mark.parametrize("quantizer", ["q8", "fp16"])
def test_bitstream_encode(benchmark, quantizer):
    model, _, _ = model_and_batch("siren")
    data = benchmark(bitstream.encode_model, model, 256, 256, quantize.parse_quantizer(quantizer))
    assert len(data) > 0


@pytest.mark.parametrize("quantizer", ["q8", "fp16"])
def test_bitstream_decode(benchmark, quantizer):
    model, _, _ = model_and_batch("siren")
    data = bitstream.encode_model(model, 256, 256, quantize.parse_quantizer(quantizer))
    assert benchmark(bitstream.decode_stream, data) is not None


def test_jpeg_rate_sweep_256(benchmark, image256):
    """Rate matching's cost: JPEG at every quality the compression suite sweeps, on one 256^2 image."""
    truth8 = codecs.to_uint8(image256)
    points = benchmark.pedantic(lambda: [codecs.JPEG(q).run(truth8) for q in codecs.JPEG.qualities], rounds=3)
    assert len(points) == len(codecs.JPEG.qualities)
