"""Generative suite: models, training, checkpoints, feature network, scores, and the suite end to end."""

from __future__ import annotations

import builtins
import csv
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from fitbench import representations
from fitbench.datasets import DatasetError
from fitbench.generative import features as features_module
from fitbench.generative.data import Digits, load_mnist
from fitbench.generative.features import ChecksumError, ClassifierSpec, FeatureExtractor, DigitClassifier, load_or_train
from fitbench.generative.models import MODELS, build_model, make_model_config, pixel_grid
from fitbench.generative.scores import (frechet_distance, kernel_inception_distance, precision_recall,
                                        score_samples)
from fitbench.generative.training import load_checkpoint, save_checkpoint, train
from fitbench.torchvision_compat import import_torchvision

from conftest import SHARED_DATA

HAS_MNIST = (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
# Small enough for seconds; the Fourier net's λ = 300 would swamp its image loss over a few steps.
TINY = {"fourier_net": {"width": 3, "depth": 2, "hidden": (16, 32), "num_train": 40, "latent_penalty": 1.0}}


def synthetic_digits(count: int = 40, seed: int = 0) -> Digits:
    """Ten fixed blob patterns plus noise: structured enough for classifiers and generators to learn."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 10
    y, x = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centres = torch.stack([4 + 2 * torch.arange(10.0), 23 - 2 * torch.arange(10.0)], 1)
    blobs = torch.exp(-((x - centres[:, 0, None, None]) ** 2 + (y - centres[:, 1, None, None]) ** 2) / 18)
    images = (blobs[labels] + 0.05 * torch.rand(count, 28, 28, generator=generator)).clamp(0, 1)
    return Digits(images[:, None], labels)


def tiny_model(name: str):
    return build_model(name, make_model_config(name, **TINY.get(name, {})))


# ------------------------------------------------------------------------------------------------ torchvision, data
def test_import_torchvision_gives_the_pure_python_parts():
    torchvision = import_torchvision()
    assert import_torchvision() is torchvision  # a second call reuses the module
    grid = torchvision.utils.make_grid(torch.zeros(4, 1, 28, 28), nrow=2, padding=2)
    assert grid.shape == (3, 62, 62)
    assert hasattr(torchvision.datasets, "MNIST")


def test_import_torchvision_passes_other_errors_through(monkeypatch):
    real_import = builtins.__import__

    def failing(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("something unrelated")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", failing)
    with pytest.raises(RuntimeError, match="something unrelated"):
        import_torchvision()


def test_missing_mnist_offline_is_one_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"MNIST is not in .*MNIST/raw.*--data-root"):
        load_mnist(False, tmp_path, allow_download=False)


@pytest.mark.skipif(not HAS_MNIST, reason=f"needs MNIST in {SHARED_DATA}/MNIST/raw (set FITBENCH_DATA_ROOT)")
def test_mnist_loads_in_unit_range():
    test = load_mnist(False, SHARED_DATA, allow_download=False)
    assert test.images.shape == (10000, 1, 28, 28) and test.labels[:4].tolist() == [7, 2, 1, 0]
    assert test.images.min() == 0 and test.images.max() == 1


# ------------------------------------------------------------------------------------------------------------ models
def test_fokr_basis_is_the_rbf_grid_with_length_scale_0_2():
    model = build_model("fokr", make_model_config("fokr"))
    phi = model.basis.matrix(model.coords)
    t = pixel_grid()  # (784, 2) on linspace(0, 1, 28)
    axis = torch.linspace(0, 1, 14)
    sy, sx = torch.meshgrid(axis, axis, indexing="ij")
    centres = torch.stack([sx.flatten(), sy.flatten()], 1)
    expected = torch.exp(-torch.cdist(t, centres) ** 2 / (2 * 0.2**2))
    assert phi.shape == (784, 196)
    torch.testing.assert_close(phi, expected, atol=1e-5, rtol=1e-5)


def test_fokr_decode_is_beta_phi_plus_mean_field():
    model = build_model("fokr", make_model_config("fokr")).eval()
    with torch.no_grad():
        model.mean_field.normal_()
        z, labels = torch.randn(3, 8), torch.tensor([0, 4, 9])
        hot = torch.nn.functional.one_hot(labels, 10).float()
        beta = model.beta_scale * model.deconv(model.project(torch.cat([hot, z], 1))).flatten(1)
        expected = beta @ model.basis.matrix(model.coords).T + model.mean_field
        torch.testing.assert_close(model.decode(z, labels).flatten(1), expected)


def test_fourier_generator_evaluates_the_fnet_representation_with_decoded_coefficients():
    model = tiny_model("fourier_net").eval()
    z = torch.randn(2, model.latent_dim)
    images = model.decode(z, torch.zeros(2, dtype=torch.long))
    flat = model.decoder(z)
    for row in range(2):  # rebuild an ordinary fnet with those coefficients and evaluate it (fused kernel)
        net = representations.build("fnet", out_features=1, width=3, depth=2, input_frequency=28 / 32)
        start = 0
        with torch.no_grad():
            for parameter in net.parameters():
                parameter.copy_(flat[row, start:start + parameter.numel()].view_as(parameter))
                start += parameter.numel()
        assert start == flat.shape[1]
        coords = pixel_grid() * 27 / 28
        torch.testing.assert_close(images[row].flatten(), net(coords).flatten(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_samples_and_round_trips_its_checkpoint(name, tmp_path):
    data = synthetic_digits(40)
    model = tiny_model(name)
    model.config.batch_size = 20
    losses = []
    outcome = train(model, data, epochs=4, on_step=lambda step, loss: losses.append(loss))
    assert outcome.steps == 8 and outcome.epochs == 4 and all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-2:]) < losses[0]  # it learns something
    labels = torch.arange(10)
    torch.manual_seed(1)
    samples = model.sample(labels)
    assert samples.shape == (10, 1, 28, 28) and 0 <= samples.min() and samples.max() <= 1
    assert model.interpolate(3, 5).shape == (5, 1, 28, 28)
    save_checkpoint(model, name, tmp_path / "model.pt")
    loaded_name, loaded = load_checkpoint(tmp_path / "model.pt")  # weights_only=True inside
    torch.manual_seed(1)
    assert loaded_name == name
    torch.testing.assert_close(loaded.sample(labels), samples)


def test_fourier_generator_sigma_is_chosen_from_the_training_latents():
    model = tiny_model("fourier_net")
    outcome = train(model, synthetic_digits(40), epochs=1)
    rms = model.latents.weight.detach().pow(2).mean().sqrt().item()
    assert outcome.logs["sigma"] == pytest.approx(rms)
    assert model.prior(torch.zeros(4000, dtype=torch.long)).std() == pytest.approx(rms, rel=0.05)


# ---------------------------------------------------------------------------------------------------------- scores
def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (the pytorch-fid implementation)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_frechet_distance_matches_scipy_and_closed_forms():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(500, 16, generator=generator)
    b = torch.randn(400, 16, generator=generator) @ torch.randn(16, 16, generator=generator) * 0.3 + 1
    assert frechet_distance(a, b) == pytest.approx(scipy_frechet(a.double().numpy(), b.double().numpy()), rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-8)
    assert frechet_distance(a, a + 2) == pytest.approx(16 * 4, rel=1e-9)  # a pure shift: ‖shift‖²


def torchmetrics_with(extractor):
    import_torchvision()  # torchmetrics imports torchvision
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    return FrechetInceptionDistance, KernelInceptionDistance


def test_frechet_and_kid_match_torchmetrics_fed_the_same_extractor():
    torch.manual_seed(0)
    extractor = FeatureExtractor(DigitClassifier().eval())
    real = synthetic_digits(300, seed=1).images
    fake = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * real.roll(5, dims=3)
    FID, KID = torchmetrics_with(extractor)
    fid = FID(feature=extractor, normalize=True).double()
    fid.update(real, real=True)
    fid.update(fake, real=False)
    kid = KID(feature=extractor, subsets=1, subset_size=300, normalize=True)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    f_real, f_fake = extractor(real), extractor(fake)
    assert frechet_distance(f_real, f_fake) == pytest.approx(float(fid.compute()), rel=1e-4)
    ours, _ = kernel_inception_distance(f_real, f_fake, subsets=1, subset_size=300)
    # torchmetrics sums the kernel matrices in float32 (ours: float64); MMD² is a small difference of sums near 1
    assert ours == pytest.approx(float(kid.compute()[0]), rel=3e-3)


def test_precision_recall_on_points_with_known_neighbourhoods():
    real = torch.tensor([[float(i), 0.0] for i in range(10)])  # k = 3 radius: 3 (ends) or 2 (inside)
    fake = torch.tensor([[4.5, 0.0], [4.5, 1.5], [4.5, 5.0], [20.0, 0.0]])
    precision, recall = precision_recall(real, fake, k=3)
    assert precision == pytest.approx(2 / 4)  # the first two lie within 2 of a real point, the others far out
    # fake radii (k = 3 of 4 points): [4.5,0]: 5.0, [4.5,1.5]: 3.5, [4.5,5]: 5.0, [20,0]: 16.3
    brute = np.mean([any(np.linalg.norm(r - f) <= rad for f, rad in zip(fake.numpy(), [5.0, 3.5, 5.0, 15.5 + 0.81]))
                     for r in real.numpy()])
    assert recall == pytest.approx(brute)


def test_class_accuracy_counts_matches_per_requested_class():
    real = torch.randn(50, 4)
    requested = torch.arange(20) % 10
    predicted = requested.clone()
    predicted[:5] = (predicted[:5] + 1) % 10  # classes 0-4 miss once each
    scores = score_samples(real, real[:20], predicted, requested, kid_subsets=2)
    assert scores.class_acc == pytest.approx(15 / 20)
    assert scores.per_class_acc == [0.5] * 5 + [1.0] * 5
    assert scores.n_samples == 20 and scores.n_real == 50


# --------------------------------------------------------------------------------------------- feature network cache
def test_feature_classifier_is_cached_and_checksummed(tmp_path, monkeypatch):
    data = synthetic_digits(100)
    spec = ClassifierSpec(epochs=8, batch_size=25)
    first = load_or_train(spec, tmp_path, data, data)
    assert first.test_accuracy > 0.5  # well above chance (0.1) on the blobs after a few steps
    monkeypatch.setattr(features_module, "fit_classifier", lambda *a: pytest.fail("retrained despite the cache"))
    again = load_or_train(spec, tmp_path, data, data)
    assert torch.equal(again.predict(data.images), first.predict(data.images))
    assert "layer fc1" in again.description
    with first.path.open("ab") as f:
        f.write(b"x")
    with pytest.raises(ChecksumError, match="delete both files"):
        load_or_train(spec, tmp_path, data, data)


# -------------------------------------------------------------------------------------------------- suite end to end
def test_smoke_preset_end_to_end_writes_metrics_grids_and_resumes(run_cli, tmp_path, monkeypatch):
    """All four models and the references, on real MNIST where it is present, else on synthetic digits."""
    from fitbench.suites import generative as suite

    if not HAS_MNIST:
        monkeypatch.setattr(suite, "load_mnist", lambda train, root: synthetic_digits(600 if train else 300))
    args = ["--suite", "generative", "--preset", "smoke", "--out", tmp_path, "--data-root", SHARED_DATA,
            "--classifier-cache", tmp_path / "cache"]
    code, out, err = run_cli(*args)
    assert code == 0, err
    with (tmp_path / "generative" / "metrics.csv").open() as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(MODELS) | {"real", "class_means", "noise"}
    for name in ("fd", "kid", "kid_std", "precision", "recall", "n_samples", "train_seconds", "epochs"):
        assert all(row[name] != "" for row in rows.values()), name
    assert rows["fokr"]["class_acc"] and rows["cvae"]["class_acc"] and not rows["vae"]["class_acc"]
    assert float(rows["real"]["fd"]) < float(rows["class_means"]["fd"]) < float(rows["noise"]["fd"])
    assert int(rows["fokr"]["n_samples"]) == 200 and float(rows["vae"]["train_seconds"]) > 0
    folder = tmp_path / "generative"
    assert len(list((folder / "samples").glob("*.png"))) == 7
    assert len(list((folder / "interpolation").glob("*.png"))) == 4
    assert len(list((folder / "checkpoints").glob("*.pt"))) == 4
    assert "| fokr | model |" in out and "layer fc1" in out
    code, _, err = run_cli(*args)
    assert code == 0 and "resuming: 7 of 7" in err


def test_unknown_model_and_preset_are_one_line_errors_before_any_work(run_cli, tmp_path, monkeypatch):
    from fitbench.suites import generative as suite

    monkeypatch.setattr(suite, "load_mnist", lambda *a: pytest.fail("data loaded before the arguments were checked"))
    base = ["--suite", "generative", "--out", tmp_path]
    code, _, err = run_cli(*base, "--preset", "huge")
    assert code == 2 and "unknown preset 'huge'" in err
    code, _, err = run_cli(*base, "--preset", "smoke", "--models", "gan")
    assert code == 2 and "unknown generative model 'gan'" in err and "fokr" in err
    code, _, err = run_cli(*base, "--preset", "smoke", "--epochs", "0")
    assert code == 2 and "--epochs must be at least 1" in err
