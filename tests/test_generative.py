"""Generative suite: data splits, models (both forms), training budgets, devices, settings, and the suite end to end.

The scores and the feature classifier's cache are in test_generative_scores.py.
"""

from __future__ import annotations

import builtins
import csv
import json
import math
import re

import numpy as np
import pytest
import torch

from fitbench import representations
from fitbench.datasets import DatasetError
from fitbench.generative import budget as budget_module
from fitbench.generative.budget import Budget
from fitbench.generative.data import load_mnist, split_training
from fitbench.generative.models import (AS_WRITTEN, BEST_IN_FAMILY, MODELS, build_model, gaussian_kl,
                                        make_model_config, pixel_grid)
from fitbench.generative.training import load_checkpoint, save_checkpoint, train
from fitbench.torchvision_compat import import_torchvision

from conftest import SHARED_DATA
from support.synthetic import synthetic_digits

HAS_MNIST = (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()
# Small enough for seconds; the Fourier net's λ = 300 would swamp its image loss over a few steps.
TINY_FOURIER = {"width": 3, "depth": 2, "hidden": (16, 32), "num_train": 40, "latent_penalty": 1.0}
TINY = {"fourier_net": TINY_FOURIER, "fourier_net_best": TINY_FOURIER, "fokr_best": {"grid": 14}}


def tiny_model(name: str, **overrides):
    return build_model(name, make_model_config(name, **{**TINY.get(name, {}), **overrides}))


def image_bytes(images: torch.Tensor) -> set[bytes]:
    return {image.numpy().tobytes() for image in images}


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


@pytest.mark.data
@pytest.mark.skipif(not HAS_MNIST, reason=f"needs MNIST in {SHARED_DATA}/MNIST/raw (set FITBENCH_DATA_ROOT)")
def test_mnist_loads_in_unit_range():
    test = load_mnist(False, SHARED_DATA, allow_download=False)
    assert test.images.shape == (10000, 1, 28, 28) and test.labels[:4].tolist() == [7, 2, 1, 0]
    assert test.images.min() == 0 and test.images.max() == 1


def test_synthetic_digits_vary_within_a_class():
    digits = synthetic_digits(200)
    assert digits.images.shape == (200, 1, 28, 28) and 0 <= digits.images.min() and digits.images.max() <= 1
    sevens = digits.images[digits.labels == 7]
    # Every image is drawn with a full-intensity pen, but no pixel is inked in nearly every 7: their mean is a blur.
    assert sevens.amax((1, 2, 3)).min() == 1 and sevens.mean(0).max() < 0.8
    assert len(image_bytes(sevens)) == len(sevens)


def test_splits_keep_the_real_images_and_validation_away_from_the_classifier():
    digits = synthetic_digits(300)  # thirds: 100 real pool, 100 validation, 100 classifier
    small = split_training(digits, 80)
    classifier = image_bytes(small.classifier.images)
    assert len(small.generators) == 80 and small.held_out
    assert image_bytes(small.real_pool.images) <= image_bytes(small.generators.images)
    assert not classifier & image_bytes(small.real_pool.images)
    assert not classifier & image_bytes(small.validation.images)
    assert not image_bytes(small.generators.images) & image_bytes(small.validation.images)
    everything = split_training(digits, None)  # the paper preset: the generators see all; the real row still not
    assert len(everything.generators) == 300 and not everything.held_out
    assert not image_bytes(everything.classifier.images) & image_bytes(everything.real_pool.images)
    assert torch.equal(split_training(digits, 80).classifier.images, small.classifier.images)  # fixed permutation


# ------------------------------------------------------------------------------------------------------------ models
def test_each_functional_generator_is_registered_as_written_and_best_in_family():
    forms = {name: entry.form for name, entry in MODELS.items()}
    assert forms == {"fokr": AS_WRITTEN, "fokr_best": BEST_IN_FAMILY, "fourier_net": AS_WRITTEN,
                     "fourier_net_best": BEST_IN_FAMILY, "vae": AS_WRITTEN, "cvae": AS_WRITTEN}
    fokr = make_model_config("fokr")  # FOKR's source: 14 x 14 centres, ℓ = 0.2, a label-only latent
    assert (fokr.grid, fokr.width_in_spacings / (fokr.grid - 1), fokr.encoder) == (14, pytest.approx(0.2), False)
    thesis = make_model_config("fourier_net")  # the thesis's layer: k / 32 in the hidden layers, raw coefficients
    assert (thesis.hidden_frequency, thesis.mean_terms) == (1 / 32, False)
    fitted, fnet = make_model_config("fourier_net_best"), representations.make_config("fnet")
    assert (fitted.hidden_frequency, fitted.mean_terms) == (fnet.hidden_frequency, fnet.mean_terms)
    assert all("validation" in MODELS[name].source for name in ("fokr_best", "fourier_net_best"))


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


def test_fokr_with_an_encoder_trains_z_from_the_image_against_its_label_prior():
    model = tiny_model("fokr", encoder=True)
    data = synthetic_digits(20)
    loss, logs = model.loss(data.images, data.labels, torch.arange(20))
    loss.backward()
    assert model.encoder.head_mean.weight.grad.abs().sum() > 0  # z depends on the image
    assert model.z_mean[0].weight.grad.abs().sum() > 0  # the label prior is pulled towards the posterior
    assert build_model("fokr", make_model_config("fokr")).encoder is None


def test_gaussian_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(0)
    mean, logvar, prior_mean, prior_logvar = (torch.randn(5, 3, generator=generator) for _ in range(4))
    normal = torch.distributions.Normal
    expected = torch.distributions.kl_divergence(normal(mean, (0.5 * logvar).exp()),
                                                 normal(prior_mean, (0.5 * prior_logvar).exp())).sum(1)
    torch.testing.assert_close(gaussian_kl(mean, logvar, prior_mean, prior_logvar), expected)
    standard = torch.distributions.kl_divergence(normal(mean, (0.5 * logvar).exp()), normal(0, 1)).sum(1)
    torch.testing.assert_close(gaussian_kl(mean, logvar), standard)


@pytest.mark.parametrize("name", ["fourier_net", "fourier_net_best"])
def test_fourier_generator_evaluates_the_fnet_representation_with_decoded_coefficients(name):
    model = tiny_model(name).eval()
    config = model.config
    z = torch.randn(2, model.latent_dim)
    images = model.decode(z, torch.zeros(2, dtype=torch.long))
    flat = model.decoder(z)
    for row in range(2):  # rebuild an ordinary fnet with those coefficients and evaluate it (fused kernel)
        net = representations.build("fnet", out_features=1, width=3, depth=2, input_frequency=28 / 32,
                                    hidden_frequency=config.hidden_frequency, mean_terms=config.mean_terms)
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
    outcome = train(model, data, Budget("epochs", 4), on_step=lambda step, loss: losses.append(loss))
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
    outcome = train(model, synthetic_digits(40), Budget("epochs", 1))
    rms = model.latents.weight.detach().pow(2).mean().sqrt().item()
    assert outcome.logs["sigma"] == pytest.approx(rms)
    assert model.prior(torch.zeros(4000, dtype=torch.long)).std() == pytest.approx(rms, rel=0.05)


def test_fourier_generator_latents_start_small_and_train_at_their_own_lr():
    """The latents start at the scale the source samples at, not N(0, 1), and Adam moves them at `latent_lr`
    (its first step moves every parameter with a gradient by its lr, less where the gradient is near Adam's eps), the decoder at `lr`."""
    model = tiny_model("fourier_net", latent_lr=0.05, latent_init_std=0.01, batch_size=40)
    assert model.latents.weight.std().item() == pytest.approx(0.01, rel=0.1)
    before_z, before_w = model.latents.weight.detach().clone(), model.decoder[0].weight.detach().clone()
    train(model, synthetic_digits(40), Budget("epochs", 1))  # one step over all 40 latents
    torch.testing.assert_close((model.latents.weight - before_z).abs(), torch.full_like(before_z, 0.05), rtol=0.05, atol=0)
    moved = (model.decoder[0].weight - before_w).abs()
    torch.testing.assert_close(moved[moved > 0], torch.full_like(moved[moved > 0], model.config.lr), rtol=0.05, atol=0)


# ------------------------------------------------------------------------------------------------------------ budgets
def test_budget_parses_and_rejects_with_one_line():
    assert Budget.parse("epochs=20") == Budget("epochs", 20) and str(Budget.parse("cpu_seconds=300")) == "cpu_seconds=300"
    for text, message in [("epochs", "expected KIND=AMOUNT"), ("minutes=3", "unknown budget kind 'minutes'"),
                          ("epochs=2.5", "positive whole number"), ("seconds=-1", "positive number")]:
        with pytest.raises(ValueError, match=message):
            Budget.parse(text)
    with pytest.raises(ValueError, match="CPU time does not count GPU work.*--budget seconds=N"):
        Budget("cpu_seconds", 10).check_device("cuda")


@pytest.mark.parametrize("kind", ["seconds", "cpu_seconds"])
def test_a_time_budget_runs_across_epochs_until_its_clock_is_spent(kind, monkeypatch):
    ticks = iter(range(10**6))  # a fake clock: one second per reading
    monkeypatch.setattr(budget_module, "CLOCKS", {kind: lambda: float(next(ticks))})
    model = tiny_model("vae")
    model.config.batch_size = 20  # 2 steps per epoch of 40 images
    outcome = train(model, synthetic_digits(40), Budget(kind, 5))
    assert outcome.steps == 5 and outcome.epochs == 2.5  # no epoch cap: the clock alone stops it


# ------------------------------------------------------------------------------------------------------------ devices
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_moves_whole_and_computes_where_it_is(name):
    """A float64 move stands in for a device move here (CPU only): a tensor left behind or made on the default
    device/dtype breaks the computation, and every parameter and buffer must follow .to()."""
    model = tiny_model(name).to(torch.float64)
    assert all(t.dtype == torch.float64 for t in [*model.parameters(), *model.buffers()] if t.is_floating_point())
    data = synthetic_digits(10)
    loss, _ = model.loss(data.images.double(), data.labels, torch.arange(10))
    loss.backward()
    model.eval()
    assert model.sample(torch.arange(10)).dtype == torch.float64
    assert model.interpolate(2, 4).dtype == torch.float64
    model.to("meta")
    assert all(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_and_samples_on_cuda(name):
    model = tiny_model(name)
    outcome = train(model, synthetic_digits(40), Budget("epochs", 1), device="cuda")
    assert outcome.steps > 0 and model.sample(torch.arange(10)).device.type == "cuda"


# ------------------------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize("overrides, message", [
    ({"grid": "abc"}, "fokr.grid must be int, got 'abc'"),
    ({"grid": 15}, "fokr.grid must be even"),
    ({"latent_dim": -1}, "fokr.latent_dim must be >= 1, got -1"),
    ({"width_in_spacings": 0}, "fokr.width_in_spacings must be > 0"),
    ({"encoder": 1}, "fokr.encoder must be bool, got 1"),
    ({"lr": True}, "fokr.lr must be float, got True"),
    ({"nope": 1}, "fokr has no setting nope"),
])
def test_model_settings_are_checked_against_the_typed_config(overrides, message):
    with pytest.raises(ValueError, match=message):
        make_model_config("fokr", **overrides)


def test_model_settings_are_coerced_where_unambiguous():
    config = make_model_config("fourier_net", hidden=[8, 16], latent_penalty=3)
    assert config.hidden == (8, 16) and isinstance(config.latent_penalty, float)
    with pytest.raises(ValueError, match=r"fourier_net.hidden must be >= 1, got \(8, 0\)"):
        make_model_config("fourier_net", hidden=(8, 0))
    with pytest.raises(ValueError, match="fourier_net.width must be >= 1 and <= 16"):
        make_model_config("fourier_net", width=17)


@pytest.mark.parametrize("argv, message", [
    (["--set", "gan.width=3"], "unknown generative model 'gan'; choose from: fokr, fokr_best"),
    (["--set", "fokr.grid=abc"], "fokr.grid must be int, got 'abc'"),
    (["--set", "vae.latent_dim=-1"], "vae.latent_dim must be >= 1, got -1"),
    (["--models", "vae", "--set", "fokr.grid=28"], r"fokr is not among the models run \(vae\)"),
    (["--set", "fourier_net.num_train=5"], "set by the suite"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--models", "gan"], "unknown generative model 'gan'"),
    (["--budget", "epochs=0"], "positive whole number"),
    (["--budget", "cpu_seconds=10", "--device", "cuda"], "CUDA is not available|CPU time does not count GPU work"),
    (["--preset", "paper", "--validation"], "the paper preset trains on the validation images too"),
])
def test_bad_arguments_are_one_line_errors_before_any_work(run_cli, tmp_path, monkeypatch, argv, message):
    from fitbench.suites import generative as suite

    monkeypatch.setattr(suite, "load_mnist", lambda *a: pytest.fail("data loaded before the arguments were checked"))
    args = ["--suite", "generative", "--out", tmp_path, "--preset", "smoke"]
    code, out, err = run_cli(*args, *argv)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and re.search(message, errors[0]), err


# -------------------------------------------------------------------------------------------------- suite end to end
# One model of each kind, both forms and a conditional one: every model's training, sampling and checkpoint are
# tested above; these tests are about the suite around them.
SUITE_MODELS = ["fokr", "fourier_net_best", "vae"]


@pytest.fixture(scope="module")
def classifier_cache(tmp_path_factory):
    """One feature-classifier cache for the suite tests of this file (each would otherwise train its own)."""
    return tmp_path_factory.mktemp("classifiers")


@pytest.fixture(scope="module")
def synthetic_mnist():
    """Synthetic train and test sets, made once for the suite tests of this file."""
    return {True: synthetic_digits(1500, seed=0), False: synthetic_digits(300, seed=1)}


@pytest.fixture
def digits_unless_mnist(monkeypatch, request):
    """Real MNIST where it is present, else synthetic digits (whose classes vary in pose and pen like handwriting,
    so the reference rows order themselves as on MNIST)."""
    from fitbench.suites import generative as suite

    if not HAS_MNIST:
        digits = request.getfixturevalue("synthetic_mnist")
        monkeypatch.setattr(suite, "load_mnist", lambda train, root: digits[train])


@pytest.mark.data  # synthetic digits without the data; CI runs it again on MNIST
def test_smoke_preset_end_to_end_writes_metrics_grids_and_resumes(run_cli, tmp_path, classifier_cache,
                                                                   digits_unless_mnist):
    args = ["--suite", "generative", "--preset", "smoke", "--out", tmp_path, "--data-root", SHARED_DATA,
            "--classifier-cache", classifier_cache, "--models", ",".join(SUITE_MODELS)]
    code, out, err = run_cli(*args)
    assert code == 0, err
    with (tmp_path / "generative" / "metrics.csv").open() as f:
        rows = {row["model"]: row for row in csv.DictReader(f)}
    assert set(rows) == set(SUITE_MODELS) | {"real", "class_means", "noise"}
    for name in ("fd", "kid", "kid_std", "precision", "recall", "n_samples", "classifier_acc"):
        assert all(row[name] != "" for row in rows.values()), name
    models = {name: row for name, row in rows.items() if row["kind"] == "model"}
    # Equal budgets, and what each used.
    assert {row["budget"] for row in models.values()} == {"epochs=1"}
    assert all(float(row["epochs"]) == 1 and int(row["steps"]) > 0 and float(row["cpu_seconds"]) > 0
               for row in models.values())
    assert {row["form"] for row in models.values()} == {AS_WRITTEN, BEST_IN_FAMILY}
    assert all(row["n_samples"] == row["n_real"] == "200" for row in rows.values())  # equal counts
    assert rows["fokr"]["class_acc"] and not rows["vae"]["class_acc"]
    # The references in their order, for their reasons: held-out real images are near the test images; the ten
    # class means are one blurred image per class (no diversity: recall 0, as duplicates have radius 0);
    # noise is far from everything.
    real, means, noise = rows["real"], rows["class_means"], rows["noise"]
    assert float(real["fd"]) < float(means["fd"]) < float(noise["fd"])
    assert float(real["recall"]) > 0.5 and float(means["recall"]) == 0 and float(noise["precision"]) == 0
    folder = tmp_path / "generative"
    assert len(list((folder / "samples").glob("*.png"))) == len(rows)
    assert len(list((folder / "interpolation").glob("*.png"))) == len(SUITE_MODELS)
    assert len(list((folder / "checkpoints").glob("*.pt"))) == len(SUITE_MODELS)
    assert "| fokr | as written | model |" in out and "layer fc1" in out
    code, _, err = run_cli(*args)
    assert code == 0 and f"resuming: {len(rows)} of {len(rows)}" in err


def test_a_failed_run_is_recorded_the_suite_goes_on_and_exits_1(run_cli, tmp_path, classifier_cache,
                                                                digits_unless_mnist, monkeypatch):
    from fitbench.generative import runs

    def broken_training(model, *args, **kwargs):
        raise RuntimeError(f"{type(model).__name__} cannot train")

    monkeypatch.setattr(runs, "train", broken_training)
    code, out, err = run_cli("--suite", "generative", "--preset", "smoke", "--out", tmp_path, "--data-root",
                             SHARED_DATA, "--classifier-cache", classifier_cache, "--models", "vae")
    assert code == 1
    assert "error: vae: RuntimeError: VAE cannot train" in err and "1 run(s) failed" in err
    with (tmp_path / "generative" / "metrics.csv").open() as f:
        assert {row["model"] for row in csv.DictReader(f)} == {"real", "class_means", "noise"}  # the rest went on
    records = [json.loads(line) for line in (tmp_path / "generative" / "runs.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records if r["model"] == "vae"] == ["error"]
