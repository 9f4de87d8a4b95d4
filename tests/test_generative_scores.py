"""Generative suite: the scores against independent implementations, and the feature classifier's cache."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch

from fitbench.generative import features as features_module
from fitbench.generative.features import ClassifierSpec, DigitClassifier, FeatureExtractor, load_or_train
from fitbench.generative.scores import frechet_distance, kernel_inception_distance, precision_recall, score_samples
from fitbench.torchvision_compat import import_torchvision

from support.synthetic import synthetic_digits


# ------------------------------------------------------------------------------------------------- Fréchet and KID
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


def test_frechet_and_kid_match_torchmetrics_fed_the_same_extractor():
    import_torchvision()  # torchmetrics imports torchvision
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    torch.manual_seed(0)
    extractor = FeatureExtractor(DigitClassifier().eval())
    real = synthetic_digits(300, seed=1).images
    fake = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * real.roll(5, dims=3)
    fid = FrechetInceptionDistance(feature=extractor, normalize=True).double()
    fid.update(real, real=True)
    fid.update(fake, real=False)
    kid = KernelInceptionDistance(feature=extractor, subsets=1, subset_size=300, normalize=True)
    kid.update(real, real=True)
    kid.update(fake, real=False)
    f_real, f_fake = extractor(real), extractor(fake)
    assert frechet_distance(f_real, f_fake) == pytest.approx(float(fid.compute()), rel=1e-4)
    ours, _ = kernel_inception_distance(f_real, f_fake, subsets=1, subset_size=300)
    # torchmetrics sums the kernel matrices in float32 (ours: float64); MMD² is a small difference of sums near 1
    assert ours == pytest.approx(float(kid.compute()[0]), rel=3e-3)


# -------------------------------------------------------------------------------------------------- precision, recall
def brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al.'s definition with plain loops: a point's radius is the distance to its k-th nearest
    *other* point of its own set; precision = share of fakes within some real point's radius, recall the reverse."""

    def radii(points: np.ndarray) -> list[float]:
        return [sorted(np.linalg.norm(p - q) for j, q in enumerate(points) if j != i)[k - 1]
                for i, p in enumerate(points)]

    def coverage(centres: np.ndarray, queries: np.ndarray) -> float:
        balls = list(zip(centres, radii(centres)))
        return float(np.mean([any(np.linalg.norm(q - c) <= r for c, r in balls) for q in queries]))

    return coverage(real, fake), coverage(fake, real)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_match_a_brute_force_implementation(k):
    generator = torch.Generator().manual_seed(k)
    real = torch.randn(60, 4, generator=generator)
    fake = torch.randn(60, 4, generator=generator) * 1.6 + 1.0  # overlapping but different: neither score is 0 or 1
    expected = brute_force_precision_recall(real.numpy(), fake.numpy(), k)
    assert 0 < min(expected) and max(expected) < 1
    assert precision_recall(real, fake, k) == pytest.approx(expected)


def test_precision_recall_on_a_hand_case_where_k_matters():
    # On a line. Real 0, 1, 2, 3, 10: radii k=1: 1, 1, 1, 1, 7; k=2: 2, 1, 1, 2, 8; k=3: 3, 2, 2, 3, 9.
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0]])
    # Fake 17.5, 30, 31, 32.2, 40: the radius of 17.5 is 12.5 (k=1), 13.5 (k=2), 14.7 (k=3).
    fake = torch.tensor([[17.5], [30.0], [31.0], [32.2], [40.0]])
    # Precision: only 17.5 can be near a real ball, 10's: 7.5 away, inside from k=2 on (radius 8).
    # Recall: only 17.5's ball reaches the reals: 10 (7.5 away) for every k, 3 (14.5 away) from k=3 on.
    expected = {1: (0.0, 1 / 5), 2: (1 / 5, 1 / 5), 3: (1 / 5, 2 / 5)}
    for k, scores in expected.items():
        assert precision_recall(real, fake, k) == pytest.approx(scores), k
        assert brute_force_precision_recall(real.numpy(), fake.numpy(), k) == pytest.approx(scores), k


def test_precision_recall_refuse_unequal_counts():
    with pytest.raises(ValueError, match="as many generated as real points, got 20 and 50"):
        precision_recall(torch.randn(50, 4), torch.randn(20, 4))


def test_class_accuracy_counts_matches_per_requested_class():
    real = torch.randn(20, 4)
    requested = torch.arange(20) % 10
    predicted = requested.clone()
    predicted[:5] = (predicted[:5] + 1) % 10  # classes 0-4 miss once each
    scores = score_samples(real, torch.randn(20, 4), predicted, requested, kid_subsets=2)
    assert scores.class_acc == pytest.approx(15 / 20)
    assert scores.per_class_acc == [0.5] * 5 + [1.0] * 5
    assert scores.n_samples == 20 and scores.n_real == 20


# --------------------------------------------------------------------------------------------- feature network cache
SPEC = ClassifierSpec(epochs=2, batch_size=25)


@pytest.fixture(scope="module")
def digits():
    return synthetic_digits(100)


def weights_of(network) -> dict[str, torch.Tensor]:
    return network.extractor.classifier.state_dict()


def test_feature_classifier_is_cached_and_not_retrained(tmp_path, digits, monkeypatch):
    first = load_or_train(SPEC, tmp_path, digits, digits)
    assert first.test_accuracy > 0.3  # above chance (0.1) after 8 small steps
    monkeypatch.setattr(features_module, "fit_classifier", lambda *a: pytest.fail("retrained despite the cache"))
    again = load_or_train(SPEC, tmp_path, digits, digits)
    assert again.path == first.path and again.test_accuracy == first.test_accuracy
    assert all(torch.equal(a, b) for a, b in zip(weights_of(first).values(), weights_of(again).values()))
    assert "layer fc1" in again.description
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json", ".pt"]  # no temporary file left behind


def test_two_fresh_caches_hold_identical_weights(tmp_path, digits):
    torch.manual_seed(123)  # whatever the global seed was before: the classifier is seeded before it is built
    first = load_or_train(SPEC, tmp_path / "a", digits, digits)
    torch.manual_seed(456)
    second = load_or_train(SPEC, tmp_path / "b", digits, digits)
    assert first.path.name == second.path.name
    assert (tmp_path / "a" / first.path.name).read_bytes() == (tmp_path / "b" / second.path.name).read_bytes()
    assert first.test_accuracy == second.test_accuracy


def test_the_cache_is_keyed_by_data_and_spec(tmp_path, digits):
    base = load_or_train(SPEC, tmp_path, digits, digits)
    other_data = load_or_train(SPEC, tmp_path, synthetic_digits(100, seed=1), digits)
    other_spec = load_or_train(ClassifierSpec(epochs=1, batch_size=25), tmp_path, digits, digits)
    assert len({base.path, other_data.path, other_spec.path}) == 3


@pytest.mark.parametrize("damage", ["truncated json", "edited weights", "other identity"])
def test_a_damaged_cache_is_retrained_and_replaced_naming_the_file(tmp_path, digits, capsys, damage):
    first = load_or_train(SPEC, tmp_path, digits, digits)
    info = first.path.with_suffix(".json")
    if damage == "truncated json":
        info.write_text(info.read_text()[:40])
    elif damage == "edited weights":
        with first.path.open("ab") as f:
            f.write(b"x")
    else:
        meta = json.loads(info.read_text())
        meta["identity"]["code"] = "an older version"
        info.write_text(json.dumps(meta))
    capsys.readouterr()
    again = load_or_train(SPEC, tmp_path, digits, digits)
    err = capsys.readouterr().err
    assert str(info) in err and "retraining" in err
    assert all(torch.equal(a, b) for a, b in zip(weights_of(first).values(), weights_of(again).values()))
    json.loads(info.read_text())  # rewritten whole
    capsys.readouterr()
    load_or_train(SPEC, tmp_path, digits, digits)
    assert "retraining" not in capsys.readouterr().err  # and used from then on


def test_an_unwritable_cache_is_one_line_naming_the_folder(tmp_path, digits):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match=f"cannot write the feature classifier cache {blocker}.*--classifier-cache"):
        load_or_train(SPEC, blocker, digits, digits)
