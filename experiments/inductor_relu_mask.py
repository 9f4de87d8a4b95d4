"""Why `--compile` with bf16 slows the ReLU networks on a CPU: torch.compile's fused kernel for a ReLU on a bf16
matmul output, with and without the boolean mask that ReLU's backward keeps.

    python experiments/inductor_relu_mask.py [--rows 65536] [--width 256]

One width-256 layer's activations at 65,536 pixels; eager against compiled, best of 5, in one process with the
engine's allocator setting (hardware.keep_freed_memory). Read the ratios: the compiled kernel is fast without
the mask and slow with it, so the cost is in storing the mask, not in the ReLU or the casts.
"""

from __future__ import annotations

import argparse
import time

import torch

from fitbench.hardware import keep_freed_memory


def relu_with_mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.relu(x.float())
    return y.to(torch.bfloat16), y <= 0


def relu_only(x: torch.Tensor) -> tuple[torch.Tensor]:
    return (torch.relu(x.float()).to(torch.bfloat16),)


def best_ms(function, x: torch.Tensor, repeats: int = 5) -> float:
    function(x)
    function(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    keep_freed_memory()
    x = torch.randn(args.rows, args.width).to(torch.bfloat16)
    for function in (relu_only, relu_with_mask):
        eager, compiled = best_ms(function, x), best_ms(torch.compile(function), x)
        print(f"{function.__name__:15s} eager {eager:6.1f} ms  compiled {compiled:6.1f} ms  "
              f"-> compiled/eager {compiled / eager:.2f}x")


if __name__ == "__main__":
    main()
