"""wire, finer, gauss, hash_grid, grid, gaussians_2d: each one's formula on a hand case, parameter counts, ranges,
culled against dense rendering, batched against one-by-one fitting, and a small smooth fit beating the mean colour."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fitbench import representations as R
from fitbench.batched import can_batch, fit_batch
from fitbench.engine import FitConfig, fit_image
from fitbench.protocol import make_split
from fitbench.representations import gaussians_2d as G
from fitbench.representations import hash_grid as H
from fitbench.representations.activated_mlp import exp_negative
from fitbench.representations.wire import complex_features, gabor
from fitbench.scoring import score

NEW = ["wire", "finer", "gauss", "hash_grid", "grid", "gaussians_2d"]


def tiny(name: str, **overrides):
    """The representation at its CI size."""
    return R.build(name, **{**R.sized_overrides(name, "tiny"), **overrides})


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("channels", [1, 3])
def test_coordinates_to_finite_values(name, channels):
    torch.manual_seed(0)
    model = tiny(name, out_features=channels)
    out = model(torch.rand(70, 2))
    assert out.shape == (70, channels) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert model.representation == name and R.get_entry(name).source


@pytest.mark.parametrize("name", NEW)
def test_parameter_counts_on_the_meta_device_match_real_builds(name):
    for size in ("tiny", "standard"):
        overrides = R.sized_overrides(name, size)
        assert R.parameter_count(name, 3, **overrides) == R.count_parameters(R.build(name, 3, **overrides))


@pytest.mark.parametrize("name", NEW)
def test_the_size_knob_grows_the_parameter_count(name):
    knob = R.get_entry(name).knob
    values = sorted({knob.low, knob.low + 1, (knob.low + knob.high) // 64 + 2, (knob.low + knob.high) // 16 + 3})
    counts = [R.parameter_count(name, 3, **knob.overrides(v)) for v in values]
    assert counts == sorted(counts) and counts[0] < counts[-1], (values, counts)


@pytest.mark.parametrize("name,bad", [
    ("wire", {"width": 1}), ("wire", {"scale": 0.0}), ("wire", {"depth": 0}),
    ("finer", {"first_bias_scale": -1.0}), ("finer", {"width": 0}), ("finer", {"omega_0": 0.0}),
    ("gauss", {"scale": -3.0}), ("gauss", {"depth": 100}),
    ("hash_grid", {"log2_table_size": 25}), ("hash_grid", {"features_per_level": 3}), ("hash_grid", {"levels": 0}),
    ("hash_grid", {"per_level_scale": 0.5}), ("hash_grid", {"per_level_scale": 4.0, "levels": 32}),
    ("grid", {"resolution": 1}), ("grid", {"head_width": 8}), ("grid", {"resolution": 16384, "levels": 4}),
    ("grid", {"interpolation": "nearest"}),
    ("gaussians_2d", {"num_gaussians": 0}), ("gaussians_2d", {"num_gaussians": 1 << 23}),
    ("gaussians_2d", {"resolution": 0}), ("gaussians_2d", {"chunk": 10}),
])
def test_validate_rejects_out_of_range_settings(name, bad):
    field = next(iter(bad))
    with pytest.raises(ValueError, match=f"{name}.{field} = .* is not valid"):
        R.make_config(name, **bad)


# --- wire ------------------------------------------------------------------------------------------------------

def test_gabor_activation_is_the_complex_wavelet():
    z = torch.complex(torch.randn(200, dtype=torch.float64), torch.randn(200, dtype=torch.float64) * 0.1)
    expected = torch.exp(1j * 20.0 * z - (30.0 * z).abs() ** 2)
    real, imag = gabor(z.real, z.imag, omega_0=20.0, scale=30.0)
    torch.testing.assert_close(torch.complex(real, imag), expected)


def test_wire_network_equals_complex_arithmetic():
    torch.manual_seed(0)
    model = R.build("wire", out_features=3, width=16, depth=3).double()
    coords = torch.rand(50, 2, dtype=torch.float64)
    h = model.first(2 * coords - 1).to(torch.complex128)
    h = torch.exp(1j * 20.0 * h - (30.0 * h).abs() ** 2)
    for layer in model.hidden:
        weight = torch.complex(layer.real.weight, layer.imag.weight)
        bias = torch.complex(layer.real.bias, layer.imag.bias)
        h = h @ weight.T + bias
        h = torch.exp(1j * 20.0 * h - (30.0 * h).abs() ** 2)
    out = (h @ torch.complex(model.head.real.weight, model.head.imag.weight).T).real + model.head.real.bias
    torch.testing.assert_close(model(coords), out)


def test_wire_gradients_equal_those_of_complex_arithmetic():
    """The hand-written derivative of the exp activation (and the merged complex product) against autograd through
    torch's complex ops, including inputs in the cut-off tail."""
    torch.manual_seed(0)
    model = R.build("wire", out_features=3, width=16, depth=3, scale=3.0).double()
    coords = torch.rand(50, 2, dtype=torch.float64)

    def by_complex_ops():
        h = model.first(2 * coords - 1).to(torch.complex128)
        h = torch.exp(1j * 20.0 * h - (3.0 * h).abs() ** 2)
        for layer in model.hidden:
            h = h @ torch.complex(layer.real.weight, layer.imag.weight).T + torch.complex(layer.real.bias,
                                                                                         layer.imag.bias)
            h = torch.exp(1j * 20.0 * h - (3.0 * h).abs() ** 2)
        return (h @ torch.complex(model.head.real.weight, model.head.imag.weight).T).real + model.head.real.bias

    params = list(model.parameters())
    ours = torch.autograd.grad(model(coords).pow(2).sum(), params)
    reference = torch.autograd.grad(by_complex_ops().pow(2).sum(), params)
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b)
    q = torch.tensor([-1.0, 0.0, 2.0, 79.0, 81.0, 1e4], dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(exp_negative, (q,))  # including the cut (q > 80), where value and gradient are 0


def test_wire_width_and_initialisation_follow_the_repository():
    torch.manual_seed(0)
    model = R.build("wire", out_features=3, width=256, depth=3)
    assert complex_features(256) == 181 and model.first.out_features == 181
    layer = model.hidden[0]
    for weight in (layer.real.weight, layer.imag.weight):  # torch's complex Linear init: U(+-1/sqrt(fan_in)) each
        assert weight.abs().max() <= 1 / math.sqrt(181) and weight.abs().max() > 0.95 / math.sqrt(181)
    n = 181  # first (real) + 2 complex hidden layers + complex head without the dead imaginary bias
    assert R.count_parameters(model) == (2 * n + n) + 2 * 2 * (n * n + n) + (2 * n * 3 + 3)


# --- finer -----------------------------------------------------------------------------------------------------

def test_finer_activation_and_its_constant_scale_gradient():
    model = R.build("finer", out_features=1, width=8, depth=1)
    z = torch.linspace(-2, 2, 101, requires_grad=True)
    out = model.activation(z)
    torch.testing.assert_close(out, torch.sin(30.0 * (z.abs() + 1) * z))
    (grad,) = torch.autograd.grad(out.sum(), z)
    # FINER's scale_req_grad=False: |z| + 1 is a constant under differentiation
    torch.testing.assert_close(grad, 30.0 * (z.abs() + 1) * torch.cos(30.0 * (z.abs() + 1) * z))


def test_finer_initialisation_draws_wide_first_biases_and_siren_weights():
    torch.manual_seed(0)
    model = R.build("finer", out_features=3, width=256, depth=3, first_bias_scale=20.0)
    first, second = model.hidden[0], model.hidden[1]
    assert first.bias.abs().max() <= 20 and first.bias.abs().max() > 19  # U(-k, k), k = 20
    assert first.bias.std().item() == pytest.approx(20 / math.sqrt(3), rel=0.15)
    assert first.weight.abs().max() <= 0.5 and first.weight.abs().max() > 0.45  # U(-1/fan_in, 1/fan_in), fan_in 2
    bound = math.sqrt(6 / 256) / 30
    for layer in (second, model.head):
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.95 * bound
    assert second.bias.abs().max() <= 1 / 16  # the other biases keep PyTorch's U(-1/sqrt(fan_in), ...)


# --- gauss -----------------------------------------------------------------------------------------------------

def test_gauss_activation_and_default_initialisation():
    torch.manual_seed(0)
    model = R.build("gauss", out_features=3, width=64, depth=2, scale=10.0)
    z = torch.linspace(-0.3, 0.3, 61)
    torch.testing.assert_close(model.activation(z), torch.exp(-(10.0 * z) ** 2))
    assert model.hidden[1].weight.abs().max() <= 1 / 8  # PyTorch's default U(-1/sqrt(64), 1/sqrt(64))
    coords = torch.rand(9, 2)
    h = coords * 2 - 1
    for layer in model.hidden:
        h = torch.exp(-(10.0 * layer(h)) ** 2)
    torch.testing.assert_close(model(coords), model.head(h))


# --- hash_grid -------------------------------------------------------------------------------------------------

def test_spatial_hash_against_a_hand_computed_index():
    level = H.Level(scale=99.0, resolution=100, entries=16, dense=False)
    # (3 * 1) XOR (5 * 2654435761 mod 2^32) = 3 XOR 387276917 = 387276918; mod 16 = 6
    assert (5 * 2654435761) % 2**32 == 387276917 and 3 ^ 387276917 == 387276918 and 387276918 % 16 == 6
    index = H.corner_index(torch.tensor([3]), torch.tensor([5]), torch.tensor([level.resolution]),
                           torch.tensor([level.entries]), torch.tensor([level.dense]))
    assert index.item() == 6
    dense = H.corner_index(torch.tensor([3]), torch.tensor([5]), torch.tensor([24]), torch.tensor([576]),
                           torch.tensor([True]))
    assert dense.item() == 3 + 5 * 24


def test_level_layout_is_tiny_cuda_nns():
    layout = H.level_layout(R.make_config("hash_grid"))  # L = 16, N_min = 16, b = 1.5, T = 2^15
    assert [level.resolution for level in layout[:5]] == [16, 24, 36, 54, 81]  # ceil(16 * 1.5^l - 1) + 1
    assert [level.entries for level in layout[:5]] == [256, 576, 1296, 2920, 6568]  # res^2 rounded up to 8
    assert [level.dense for level in layout[:7]] == [True] * 6 + [False]  # 183^2 > 2^15: hashed from level 6
    assert all(level.entries == 2**15 for level in layout[6:])
    model = R.build("hash_grid", out_features=3)
    mlp = (32 * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3)
    assert R.count_parameters(model) == 2 * sum(level.entries for level in layout) + mlp


def test_hash_encoding_interpolates_the_four_corners_of_each_level():
    torch.manual_seed(0)
    config = R.make_config("hash_grid", levels=2, log2_table_size=4, base_resolution=4, per_level_scale=2.0)
    encoding = H.HashGridEncoding(config)
    with torch.no_grad():
        encoding.table.normal_()
    point = torch.tensor([[0.3, 0.7]])
    table = encoding.table.view(-1, 2)
    layout, offset = H.level_layout(config), 0
    for level_index, level in enumerate(layout):  # level 0 dense (4^2 = 16 entries), level 1 hashed
        x, y = 0.3 * level.scale + 0.5, 0.7 * level.scale + 0.5
        cx, cy, fx, fy = math.floor(x), math.floor(y), x - math.floor(x), y - math.floor(y)
        expected = 0
        for dx, dy in [(0, 0), (1, 0), (0, 1), (1, 1)]:
            i, j = cx + dx, cy + dy
            index = i + j * level.resolution if level.dense else (i ^ ((j * 2654435761) % 2**32))
            weight = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
            expected = expected + weight * table[offset + index % level.entries]
        torch.testing.assert_close(encoding(point)[0, 2 * level_index: 2 * level_index + 2], expected)
        offset += level.entries
    assert [level.dense for level in layout] == [True, False]


@pytest.mark.skipif(not (torch.cuda.is_available() and H.tcnn_available()),
                    reason="needs tinycudann and CUDA (not installable on the CPU-only development machine)")
def test_tiny_cuda_nn_backend_agrees_with_the_pytorch_encoding():
    torch.manual_seed(0)
    model = R.build("hash_grid", out_features=3, log2_table_size=12).cuda()
    coords = torch.rand(5000, 2, device="cuda")
    with torch.no_grad():
        model.encoding.table.normal_(0, 0.1)
    reference = copy.deepcopy(model)
    reference.encoding.config = R.make_config("hash_grid", log2_table_size=12, backend="torch")
    out, expected = model(coords), reference(coords)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    grad, = torch.autograd.grad(out.square().sum(), model.encoding.table)
    grad_expected, = torch.autograd.grad(expected.square().sum(), reference.encoding.table)
    torch.testing.assert_close(grad, grad_expected, rtol=1e-3, atol=1e-6)


# --- grid ------------------------------------------------------------------------------------------------------

def test_grid_bilinear_sampling_against_a_hand_case():
    model = R.build("grid", out_features=1, resolution=3, interpolation="bilinear")
    values = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]])  # rows y, columns x
    with torch.no_grad():
        model.grids[0].copy_(values.view(1, 1, 3, 3))
    # align_corners: x in [0, 1) -> 2x - 1, cell centres at -1, 0, 1; (x, y) = (0.75, 0.25) -> corners at
    # column 1.5 and row 0.5 of the 3 x 3 grid
    out = model(torch.tensor([[0.75, 0.25]]))
    expected = 0.5 * 0.5 * (1.0 + 2.0 + 4.0 + 5.0)
    torch.testing.assert_close(out, torch.tensor([[expected]]))


def test_multiresolution_grid_sums_its_levels_and_feeds_the_head():
    torch.manual_seed(0)
    model = R.build("grid", out_features=3, resolution=8, levels=2, features=4, head_width=0)
    assert [tuple(g.shape) for g in model.grids] == [(1, 4, 8, 8), (1, 4, 4, 4)]
    assert R.count_parameters(model) == 4 * (64 + 16) + (4 * 3 + 3)
    coords = torch.rand(20, 2)
    points = (2 * coords - 1).view(1, 1, -1, 2)
    summed = sum(F.grid_sample(g, points, mode="bicubic", align_corners=True, padding_mode="border") for g in model.grids)
    torch.testing.assert_close(model(coords), model.head(summed[0, :, 0].T))
    assert torch.allclose(R.build("grid", out_features=1, resolution=4, levels=2)(coords), torch.tensor(0.1))


# --- gaussians_2d ----------------------------------------------------------------------------------------------

def one_gaussian(l11: float, l21: float, l22: float, centre: tuple[float, float], resolution: int = 32):
    model = R.build("gaussians_2d", out_features=3, num_gaussians=1, resolution=resolution).double()
    with torch.no_grad():
        model.cholesky.copy_(torch.tensor([[l11 - 0.5, l21, l22 - 0.5]]))
        model.position.copy_(torch.atanh(torch.tensor([centre]) * 2 / resolution - 1))
        model.colour.copy_(torch.tensor([[0.9, 0.5, 0.2]]))
    return model


def test_one_gaussian_renders_its_closed_form_density():
    model = one_gaussian(3.0, 1.5, 2.0, (12.25, 17.5))
    coords = torch.rand(400, 2, dtype=torch.float64)
    L = torch.tensor([[3.0, 0.0], [1.5, 2.0]], dtype=torch.float64)
    sigma = L @ L.T
    d = torch.tensor([12.25, 17.5], dtype=torch.float64) - coords * 32
    mahalanobis = (d @ torch.linalg.inv(sigma) * d).sum(1)
    density = torch.exp(-0.5 * mahalanobis)
    density = density * (density >= 1 / 255)  # the rasteriser's cut-off
    expected = density[:, None] * torch.tensor([0.9, 0.5, 0.2], dtype=torch.float64)
    torch.testing.assert_close(model(coords), expected)
    assert (density > 0).sum() > 20 and (density == 0).sum() > 20  # both inside and outside the footprint


def dense_render(model, coords: torch.Tensor) -> torch.Tensor:
    """Every Gaussian at every point, the same formula without culling."""
    conic, _ = model.conics()
    d = model.centres()[None] - coords[:, None] * model.resolution
    sigma = (0.5 * (conic[:, 0] * d[..., 0] ** 2 + conic[:, 2] * d[..., 1] ** 2) + conic[:, 1] * d[..., 0] * d[..., 1])
    weight = torch.exp(-sigma) * ((sigma >= 0) & (sigma <= G.SIGMA_MAX))
    return (weight @ model.colour).clamp(0, 1)


# keep: the forward values backward may reuse (all, none, or the first chunks and then recomputation)
@pytest.mark.parametrize("tile,chunk,keep", [(4, 1024, 1 << 24), (4, 1024, 0), (3, 1024, 5000), (16, 1 << 20, 1 << 24)])
def test_culled_chunked_rendering_equals_dense_rendering(tile, chunk, keep, monkeypatch):
    from fitbench.representations import kept

    monkeypatch.setattr(kept, "KEEP_FLOATS", keep)
    torch.manual_seed(tile)
    model = R.build("gaussians_2d", out_features=3, num_gaussians=120, resolution=32, tile=tile, chunk=chunk).double()
    with torch.no_grad():
        model.colour.mul_(0.2)  # keep the sum inside [0, 1], where the clamp passes gradients
    coords = torch.rand(300, 2, dtype=torch.float64)
    coords[:60] *= 0.05  # a crowded tile: several bins of points
    torch.testing.assert_close(model(coords), dense_render(model, coords))
    grads = torch.autograd.grad(model(coords).square().sum(), list(model.parameters()))
    dense_grads = torch.autograd.grad(dense_render(model, coords).square().sum(), list(model.parameters()))
    for grad, dense in zip(grads, dense_grads):
        torch.testing.assert_close(grad, dense)


def test_chunks_bound_the_work_held_at_once():
    torch.manual_seed(0)
    model = R.build("gaussians_2d", out_features=3, num_gaussians=300, resolution=64)
    points = torch.rand(2048, 2) * 64
    conic, radius = model.conics()
    plan = G.SplatPlan(points, model.centres().detach(), radius, 64, 16, 1 << 12)
    held = [len(bins) * plan.bin_size for _, bins in plan.chunks()]
    assert sum(held) == plan.work.sum() and len(held) > 10
    assert max(held) <= (1 << 12) + plan.work.max()  # a chunk passes the budget by at most one Gaussian's points


def cholesky_factors(model):
    return (model.cholesky + torch.tensor([0.5, 0.0, 0.5])).unbind(1)


def test_gaussians_2d_parametrisation_and_initialisation():
    torch.manual_seed(0)
    model = R.build("gaussians_2d", out_features=3, num_gaussians=5000, resolution=70)  # denser than 1 per pixel
    assert R.count_parameters(model) == 8 * 5000  # position 2 + Cholesky 3 + colour 3
    assert R.count_parameters(R.build("gaussians_2d", out_features=1, num_gaussians=10)) == 60
    centres = model.centres()
    assert centres.min() > 0 and centres.max() < 70 and abs(centres.mean().item() - 35) < 2  # uniform over the frame
    l11, l21, l22 = cholesky_factors(model)  # the repository's initialisation
    assert 0.5 <= l11.min() and l11.max() < 1.5 and 0 <= l21.min() and l21.max() < 1 and 0.5 <= l22.min()
    assert 0 <= model.colour.min() and model.colour.max() < 1
    assert not can_batch("gaussians_2d") and R.get_entry("gaussians_2d").batchable is False
    # sparser than one per frame pixel: the same factors times the Gaussians' mean spacing, here 200 / sqrt(2500) = 4
    l11, l21, l22 = cholesky_factors(R.build("gaussians_2d", out_features=3, num_gaussians=2500, resolution=200))
    assert 2 <= l11.min() and l11.max() < 6 and 0 <= l21.min() and 3.5 < l21.max() < 4 and 2 <= l22.min()


@pytest.mark.parametrize("name", ["gaussians_2d", "hash_grid"])
def test_settings_that_follow_the_image_scale_with_its_training_grid(name):
    """One config at 128^2 and at 512^2 (alternate protocol: 64^2 and 256^2 training grids)."""
    sized = R.sized_overrides(name, "standard")
    small, large = (R.build(name, 3, training_grid=R.TrainingGrid(side, side), **sized).config for side in (64, 256))
    if name == "gaussians_2d":
        assert (small.resolution, large.resolution) == (64, 256)  # frame pixels are training pixels
    else:  # the finest level has as many cells per side as the training grid has pixels
        finest = [c.base_resolution * c.per_level_scale ** (c.levels - 1) for c in (small, large)]
        assert finest == pytest.approx([64, 256])


def uncovered_at_init(side: int) -> float:
    """Fraction of an image's test pixels whose total Gaussian weight at initialisation is below 0.05."""
    from fitbench.protocol import coordinate_grid, make_split
    from fitbench.representations.gaussians_2d import SplatPlan, SplatSum

    torch.manual_seed(0)
    model = R.build("gaussians_2d", 3, training_grid=R.TrainingGrid(side // 2, side // 2),
                    **R.sized_overrides("gaussians_2d", "standard"))
    test = torch.from_numpy(make_split("alternate", side, side).test.reshape(-1))
    points = coordinate_grid(side, side)[test] * model.resolution
    with torch.no_grad():
        conic, radius = model.conics()
        plan = SplatPlan(points, model.centres(), radius, model.resolution, model.tile, model.chunk)
        weight = SplatSum.apply(points, model.centres(), conic, torch.ones(len(conic), 1), plan)
    return float((weight < 0.05).float().mean())


def test_gaussians_2d_covers_the_image_at_initialisation_at_any_size():
    # With the frame fixed at 256 pixels and the repository's initialisation, 28 % of the test pixels started
    # (almost) uncovered at 128^2 and at 512^2.
    assert uncovered_at_init(128) < 0.001 and uncovered_at_init(512) < 0.001


# --- fitting ---------------------------------------------------------------------------------------------------

def smooth_image(side: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:side, 0:side] / side
    return np.stack([0.5 + 0.3 * np.sin(2 * np.pi * x) * np.cos(np.pi * y), 0.3 + 0.4 * x * y,
                     0.6 - 0.3 * np.cos(np.pi * (x + y))], -1).astype(np.float32)


@pytest.mark.parametrize("name", NEW)
def test_a_small_smooth_image_is_fitted_beyond_the_mean_colour(name, one_thread):
    # Fitting, not generalising: every pixel is trained on (held-out pixels are the fitting suite's business;
    # docs/representations.md reports both protocols).
    image = smooth_image()
    split = make_split("full", *image.shape[:2])
    torch.manual_seed(0)
    model = tiny(name)
    outcome = fit_image(model, image, split, FitConfig.for_representation(model.config, 150, curve=False))
    mean = np.broadcast_to(image.mean((0, 1)), image.shape)
    fitted, baseline = score(image, outcome.reconstruction, split), score(image, mean, split)
    assert outcome.status == "ok" and outcome.curve["loss"][-1] < 0.5 * outcome.curve["loss"][0]
    assert fitted.psnr_train > baseline.psnr_train + 1, (fitted.psnr_train, baseline.psnr_train)


@pytest.mark.parametrize("name", ["wire", "finer", "gauss", "hash_grid", "grid"])
def test_batched_fits_equal_one_by_one_fits(name):
    assert can_batch(name) and R.get_entry(name).batchable
    rng = np.random.default_rng(0)
    images = [rng.random((12, 12, 3)).astype(np.float32) for _ in range(2)]
    split = make_split("alternate", 12, 12)
    models = []
    for seed in range(2):
        torch.manual_seed(seed)
        models.append(tiny(name, seed=seed))
    config = FitConfig(steps=8, lr=1e-3, log_every=4)
    one_by_one = [fit_image(copy.deepcopy(m), image, split, config) for m, image in zip(models, images)]
    together = fit_batch(models, images, split, config)
    for single, batched in zip(one_by_one, together):
        np.testing.assert_allclose(batched.curve["loss"], single.curve["loss"], rtol=1e-4)
        np.testing.assert_allclose(batched.reconstruction, single.reconstruction, atol=1e-5)
