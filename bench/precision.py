"""`--precision auto`: bf16 matmuls where the device computes them natively and their measured cost is small.

Two facts decide, and the record says which: whether the device has native bf16 matrix units (detected: the CPU's
`amx_bf16` / `avx512_bf16` flags, a CUDA device of compute capability 8.0 or later; without them bf16 is
emulated and slower), and the PSNR that bf16 costs each representation at the end of a fit, measured on the
tuning images (never the reported ones) by `python run_bench.py --suite precision` and
shipped as package data in fitbench/reference/bf16_cost.json (bench/reference/ here; bench/reference_data.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from . import reference_data

BF16_TOLERANCE_DB = 0.1  # the largest mean test-PSNR cost at which auto takes bf16
BF16_COST_FILE = reference_data.BF16_COST_FILE
CPU_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16"}


@dataclass(frozen=True)
class PrecisionChoice:
    precision: str  # fp32 | bf16
    reason: str  # why, for the record ("" when the user named the precision)


def native_bf16(device: str) -> str | None:
    """The device's native bf16 matrix unit, named, or None where bf16 would be emulated."""
    target = torch.device(device)
    if target.type == "cuda":
        major, minor = torch.cuda.get_device_capability(target)
        return f"CUDA sm_{major}{minor} tensor cores" if major >= 8 else None
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):  # not Linux: nothing detected, so nothing assumed
        return None
    return cpu_bf16_unit(set(flags.split(":", 1)[1].split()))


def cpu_bf16_unit(flags: set[str]) -> str | None:
    """The native bf16 unit among a CPU's feature flags (as /proc/cpuinfo lists them), or None."""
    return next((name for flag, name in CPU_BF16_FLAGS.items() if flag in flags), None)


def load_bf16_costs(path: Path = BF16_COST_FILE) -> dict[str, float]:
    """Representation -> mean test-PSNR cost of bf16 (fp32 minus bf16, dB); empty where nothing was measured."""
    if not path.is_file():
        return {}
    measured = json.loads(path.read_text())
    return {name: entry["cost_db"] for name, entry in measured["representations"].items()}


def choose_precision(requested: str, device: str, representation: str,
                     costs: dict[str, float] | None = None) -> PrecisionChoice:
    """`requested` as is (fp32, bf16), or what `auto` picks for `representation` on `device`, with its reason."""
    if requested != "auto":
        return PrecisionChoice(requested, "")
    unit = native_bf16(device)
    if unit is None:
        return PrecisionChoice("fp32", "auto: fp32, no native bf16 on this device")
    cost = (load_bf16_costs() if costs is None else costs).get(representation)
    if cost is None:
        return PrecisionChoice("fp32", f"auto: fp32, bf16 cost not measured ({BF16_COST_FILE.name})")
    if cost > BF16_TOLERANCE_DB:
        return PrecisionChoice("fp32", f"auto: fp32, bf16 costs {cost:.2f} dB > {BF16_TOLERANCE_DB}")
    return PrecisionChoice("bf16", f"auto: bf16 on {unit}, measured cost {cost:.2f} dB <= {BF16_TOLERANCE_DB}")
