"""Engine pieces: counted FLOPs against the analytic count, the bf16 policy, the measured peak."""

import numpy as np
import torch

from fitbench import representations as R
from fitbench.engine import Bf16Matmuls, FitConfig, fit_image
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
