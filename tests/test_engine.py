"""Engine pieces: counted FLOPs against the analytic count, the bf16 policy, the measured peak."""

import weakref

import numpy as np
import torch

from fitbench import representations as R
from fitbench.engine import Bf16Matmuls, FitConfig, PixelLoss, fit_image, make_optimizer, make_step
from fitbench.flops import training_step_flops
from fitbench.hardware import matmul_peak
from fitbench.protocol import make_split


def test_training_flops_match_the_analytic_count_of_an_mlp():
    width, depth, pixels, out = 32, 3, 1000, 3
    model = R.build("relu_mlp", out_features=out, width=width, depth=depth)
    layers = [(2, width)] + [(width, width)] * (depth - 1) + [(width, out)]
    forward = sum(2 * pixels * i * o for i, o in layers)
    weight_grads = forward
    input_grads = sum(2 * pixels * i * o for i, o in layers[1:])  # no gradient is needed for the coordinates
    assert training_step_flops(model, pixels) == forward + weight_grads + input_grads


def test_flop_probe_leaves_gradients_alone():
    model = R.build("siren", width=8, depth=2)
    training_step_flops(model, 64)
    assert all(p.grad is None for p in model.parameters())


def test_bf16_policy_keeps_coordinate_layers_in_fp32():
    seen = []

    class Spy(Bf16Matmuls):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.nn.functional.linear:
                seen.append(args[0].shape[-1])
            return super().__torch_function__(func, types, args, kwargs)

    model = R.build("siren", width=32, depth=2)
    with Spy():
        out = model(torch.rand(5, 2))
    assert out.dtype == torch.float32 and seen == [2, 32, 32]
    wide, thin = torch.nn.Linear(32, 4), torch.nn.Linear(2, 4)
    x32, x2 = torch.rand(3, 32), torch.rand(3, 2)
    with Bf16Matmuls():
        assert torch.equal(thin(x2), torch.nn.functional.linear(x2, thin.weight, thin.bias))  # exact: fp32
        bf = wide(x32)
    ref = torch.nn.functional.linear(x32.bfloat16(), wide.weight.bfloat16(), wide.bias.bfloat16()).float()
    assert torch.equal(bf, ref)


def test_bf16_fit_tracks_fp32_and_records_timings():
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    split = make_split("alternate", 16, 16)
    outcomes = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        outcomes[precision] = fit_image(R.build("relu_mlp", width=32, depth=2), image, split,
                                        FitConfig(steps=30, lr=1e-2, precision=precision))
    fp32, bf16 = outcomes["fp32"], outcomes["bf16"]
    assert abs(fp32.curve["loss"][-1] - bf16.curve["loss"][-1]) < 0.02 * fp32.curve["loss"][-1]
    assert fp32.curve["loss"] != bf16.curve["loss"]  # bf16 really ran
    assert fp32.flops_per_step == training_step_flops(R.build("relu_mlp", width=32, depth=2), 64)
    assert fp32.step_seconds > 0 and fp32.gflops > 0


def test_measured_peak_is_cached_per_process():
    first = matmul_peak("cpu", "fp32", size=128, repeats=2)
    assert first.gflops > 0 and matmul_peak("cpu", "fp32", size=128, repeats=2) is first


# ----------------------------------------------------------------------------------- budgets, schedules, curves
import math  # noqa: E402

import pytest  # noqa: E402

from fitbench.engine import EVAL_STEPS, BestWeights, pixel_sampler, train  # noqa: E402


def _tiny_fit(**settings):
    y, x = np.mgrid[0:16, 0:16] / 16
    image = np.stack([np.sin(3 * x), np.cos(2 * y), x * y], -1).astype(np.float32) * 0.5 + 0.25  # learnable
    torch.manual_seed(0)
    model = R.build("relu_mlp", width=16, depth=2)
    return fit_image(model, image, make_split("alternate", 16, 16), FitConfig(lr=1e-2, **settings))


@pytest.mark.parametrize("schedule, halfway, end", [("constant", 1.0, 1.0), ("cosine", 0.55, 0.1),
                                                    ("exponential", math.sqrt(0.1), 0.1)])
def test_learning_rate_schedules(schedule, halfway, end):
    config = FitConfig(steps=10, lr=2.0, schedule=schedule, lr_final=0.1)
    assert config.learning_rate(0.0) == pytest.approx(2.0)
    assert config.learning_rate(0.5) == pytest.approx(2.0 * halfway)
    assert config.learning_rate(1.0) == pytest.approx(2.0 * end)


def test_the_schedule_reaches_the_optimiser():
    seen = []
    weight = torch.nn.Parameter(torch.zeros(1))
    config = FitConfig(steps=4, lr=1.0, schedule="exponential", lr_final=0.01, log_every=1)

    class Spy(torch.optim.Adam):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    original, torch.optim.Adam = torch.optim.Adam, Spy
    try:
        train(lambda: (weight - 1).square(), [weight], 1, config)
    finally:
        torch.optim.Adam = original
    assert seen == pytest.approx([0.01 ** (s / 4) for s in range(4)])


def test_a_flop_budget_caps_the_steps():
    unbounded = _tiny_fit(steps=50, curve=False)
    capped = _tiny_fit(steps=50, flops=unbounded.flops_per_step * 7.5, curve=False)
    assert unbounded.steps_done == 50 and capped.steps_done == 7


def test_a_time_budget_stops_the_fit_early():
    outcome = _tiny_fit(steps=10**6, seconds=0.3, log_every=5, curve=False)
    # it ran until the budget and then stopped; how many steps fit in 0.3 s depends on the machine and its load
    assert 1 <= outcome.steps_done < 10**6 and 0.3 <= outcome.seconds < 5


def test_the_eval_curve_is_at_log_spaced_steps_and_off_the_clock():
    outcome = _tiny_fit(steps=30)
    curve = outcome.curve["eval"]
    assert curve["step"] == [s for s in EVAL_STEPS if s <= 30] + [30]
    assert curve["seconds"] == sorted(curve["seconds"]) and curve["seconds"][-1] <= outcome.seconds + 1e-4  # stored rounded to 0.1 ms
    assert curve["psnr_test"][-1] > curve["psnr_test"][0]


def test_keep_best_ends_with_the_weights_of_the_lowest_loss():
    def fit(keep_best: bool) -> tuple[float, float]:
        weight = torch.nn.Parameter(torch.tensor([0.0]))
        config = FitConfig(steps=20, lr=0.9, keep_best=keep_best, log_every=1, curve=False)  # lr 0.9 oscillates
        log = train(lambda: (weight - 1).square(), [weight], 1, config)
        return float((weight.detach() - 1).square()), min(log.curves[0]["loss"])

    last, lowest = fit(keep_best=False)
    kept, lowest_seen = fit(keep_best=True)
    assert lowest_seen == lowest  # keeping the best does not change the trajectory
    assert lowest < last / 10  # the last weights are far from the best seen ...
    assert kept == pytest.approx(lowest, rel=1e-6)  # ... and keep_best ends on the best


def test_keep_best_handles_stacked_models_each_on_its_own():
    weights = torch.nn.Parameter(torch.tensor([[0.0], [10.0]]))
    best = BestWeights([weights], 2)
    best.offer(torch.tensor([1.0, 5.0]))
    with torch.no_grad():
        weights += 1
    best.offer(torch.tensor([2.0, 4.0]))  # model 0 got worse, model 1 better
    with torch.no_grad():
        weights += 1
    best.restore(torch.tensor([3.0, float("nan")]))
    assert weights.flatten().tolist() == [0.0, 11.0]


def test_pixel_subsets_cover_every_pixel_once_per_pass():
    pick = pixel_sampler(10, 3, torch.device("cpu"))
    first_pass = torch.cat([pick() for _ in range(3)])
    assert len(set(first_pass.tolist())) == 9  # without replacement within a pass
    assert pixel_sampler(10, None, torch.device("cpu"))() is None


def test_a_fit_on_pixel_subsets_counts_the_flops_of_the_subset():
    outcome = _tiny_fit(steps=20, pixels_per_step=16, curve=False)
    full = _tiny_fit(steps=20, curve=False)
    assert outcome.flops_per_step * 4 == full.flops_per_step  # 64 training pixels, 16 per step
    assert outcome.curve["loss"] != full.curve["loss"]


@pytest.mark.parametrize("settings, message", [({"schedule": "linear"}, "unknown schedule"),
                                               ({"seconds": 0}, "seconds budget must be positive")])
def test_bad_fit_settings_are_one_line(settings, message):
    with pytest.raises(ValueError, match=message):
        FitConfig(steps=1, lr=1, **settings)


@pytest.mark.parametrize("name", ["siren", "hash_grid", "gaussians_2d"])
def test_a_step_in_pixel_chunks_is_the_full_batch_step(name, one_thread):
    """Gradients add up over the chunks: the fit follows the one-pass fit to float rounding (also with a pixel
    subset per step, which is drawn once per step and then chunked)."""
    image = np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)
    split = make_split("alternate", 20, 20)
    overrides = R.sized_overrides(name, "tiny")

    def fit(chunk, **settings):
        torch.manual_seed(0)
        model = R.build(name, **overrides)
        config = FitConfig(steps=15, lr=R.make_config(name, **overrides).lr, log_every=1, curve=False,
                           pixel_chunk=chunk, **settings)
        return fit_image(model, image, split, config)

    whole, chunked = fit(None), fit(7)  # 100 training pixels: 14 full chunks and one of 2
    np.testing.assert_allclose(chunked.curve["loss"], whole.curve["loss"], rtol=1e-4)
    np.testing.assert_allclose(chunked.reconstruction, whole.reconstruction, atol=1e-4)
    subset_whole, subset_chunked = fit(None, pixels_per_step=30), fit(8, pixels_per_step=30)
    np.testing.assert_allclose(subset_chunked.curve["loss"], subset_whole.curve["loss"], rtol=1e-4)


def test_only_one_chunks_activations_are_alive_at_a_time():
    """The point of chunks: a chunk's forward runs after the previous chunk's backward has freed its graph."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    outputs, alive_at_forward = [], []

    def predict(coords):
        alive_at_forward.append(sum(ref() is not None for ref in outputs))
        hidden = model[1](model[0](coords))  # kept alive only by the autograd graph (Tanh saves its output)
        outputs.append(weakref.ref(hidden))
        return model[2](hidden)

    config = FitConfig(steps=1, lr=1e-3, pixel_chunk=10)
    losses = PixelLoss(predict, torch.rand(40, 2), torch.rand(40, 3), config)
    step = make_step(losses, make_optimizer(list(model.parameters()), config), config)
    step()
    assert alive_at_forward == [0, 0, 0, 0]


def test_a_pixel_chunk_below_one_is_one_line():
    with pytest.raises(ValueError, match="pixel_chunk must be a positive number"):
        FitConfig(steps=1, lr=1, pixel_chunk=0)
