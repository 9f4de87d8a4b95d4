"""The outside audits' streams that stalled or misled `--decode` (issues 15 and 22), written for whichever fitbench is
installed or on PYTHONPATH, so that a run before and after a change can be compared:

    python experiments/decode_audit.py write DIR            # the streams (and a 3 GB sparse file: no disk blocks)
    python experiments/decode_audit.py time DIR/*.fbi       # each through `--decode`'s own code, one process each
    python experiments/decode_audit.py calibrate            # the decoder's cost model, measured on this machine

`time` runs each file in a fresh process (what `--decode FILE` does: read, check, build, render, write the PNG) and
prints its wall seconds (with Python and torch start-up), the decode alone, CPU seconds, peak memory (max RSS) and
the outcome, control characters escaped. `calibrate` prints the seconds per unit of each cost the decoder counts
(bench/compression/sizing.py: COST_MODEL), and predicted against measured seconds for a set of streams.

Issue 15: small streams whose header lies (checksum recomputed): an FNET of depth 256 and 4096, a ReLU MLP and a SIREN
declaring an 8192^2 image, and (within the decoder's pixel limit) 4096^2.
Issue 22: 1,024 Gaussians each covering the whole 512^2 image (Cholesky values 200: the cost was counted before the
weights were loaded); all-zero hash grid and Fourier-feature streams just within the old limit of 2^37 counted
operations; a 2^2 grid rendered at 4096^2 (mostly PNG writing); a 3 GB sparse file; a plugin name made of escape
sequences and a shell command; quantizer names `q08` and `q８` (a full-width digit).
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import redirect_stdout
from pathlib import Path

import torch
from PIL import Image
from torch.overrides import TorchFunctionMode

from fitbench import representations
from fitbench.compression import bitstream
from fitbench.compression import sizing  # its cost model is read when calibrating: `time` runs on older versions too
from fitbench.compression.quantize import parse_quantizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the stream forger is test code (tests/support)
from support.fuzz import split, with_header_text  # noqa: E402

LIES = {  # file name: (representation, settings of the honest stream, header changes)
    "fnet_depth256": ("fnet", {"width": 2, "depth": 2}, {"config": {"depth": 256}}),
    "fnet_depth4096": ("fnet", {"width": 2, "depth": 2}, {"config": {"depth": 4096}}),
    "relu_mlp_8192": ("relu_mlp", {"width": 8, "depth": 2}, {"height": 8192, "width": 8192}),
    "siren_8192": ("siren", {"width": 8, "depth": 2}, {"height": 8192, "width": 8192}),
    "relu_mlp_4096": ("relu_mlp", {"width": 8, "depth": 2}, {"height": 4096, "width": 4096}),
    "siren_4096": ("siren", {"width": 8, "depth": 2}, {"height": 4096, "width": 4096}),
    "plugin_escapes": ("siren", {"width": 8, "depth": 2},
                       {"plugin": "\x1b[2J\x1b[H\x1b[31mx.py; rm -rf ~ \u202e", "representation": "evil"}),
    "plugin_escapes_loaded": ("siren", {"width": 8, "depth": 2}, {"plugin": "\x1b[2J\x1b[Hx.py; rm -rf ~"}),
    "quantizer_q08": ("siren", {"width": 8, "depth": 2}, {"quantizer": "q08"}),
    "quantizer_fullwidth": ("siren", {"width": 8, "depth": 2}, {"quantizer": "q\uff18"}),
}
# file name: (representation, settings, every trainable value (None: keep the seeded ones), height = width)
HONEST = {
    "gaussians_cover_all": ("gaussians_2d", {"num_gaussians": 1024, "resolution": 512}, None, 512),
    "hash_grid_zero": ("hash_grid", {}, 0.0, 1600),
    "fourier_features_zero": ("fourier_features", {}, 0.0, 716),
    "grid_4096": ("grid", {"resolution": 2}, None, 4096),
}
SPARSE_BYTES = 3 << 30
# Streams of the largest square image whose decode the decoder estimates within its limit (this fitbench's COST_MODEL):
# timing them checks that the estimate bounds what a decode takes.
AT_LIMIT = {
    "siren": ("siren", {"width": 64, "depth": 3}, None),
    "hash_grid": ("hash_grid", {}, 0.0),
    "fourier_features": ("fourier_features", {}, 0.0),
    "wire": ("wire", {}, None),
    "grid": ("grid", {"resolution": 2}, None),
    "gaussians_2d": ("gaussians_2d", {"num_gaussians": 1024, "resolution": 512}, None),
}


def lie(header: dict, changes: dict) -> dict:
    header = dict(header, config=dict(header["config"]))
    for key, value in changes.items():
        if key == "config":
            header["config"].update(value)
        else:
            header[key] = value
    return header


def honest_stream(name: str, settings: dict, value: float | None, side: int) -> bytes:
    torch.manual_seed(0)
    model = representations.build(name, 3, **settings)
    with torch.no_grad():
        if name == "gaussians_2d":  # centred, Cholesky factors of 200 pixels: every Gaussian covers every pixel
            model.position.zero_(), model.cholesky.fill_(200.0), model.colour.fill_(0.5 / 1024)
        elif value is not None:
            for p in model.parameters():
                p.fill_(value)
    return bitstream.encode_model(model, side, side, parse_quantizer("q8" if value is None else "fp32"), "best")


def at_limit(name: str, settings: dict, value: float | None) -> bytes:
    """`honest_stream` at the largest side (bisected) whose estimated decode is within MAX_DECODE_SECONDS."""
    from fitbench.compression.errors import BitstreamError

    low, high = 1, 4096
    while low < high:
        side = (low + high + 1) // 2
        try:
            bitstream.decode_stream(honest_stream(name, settings, value, side))
            low = side
        except BitstreamError:
            high = side - 1
    return honest_stream(name, settings, value, low)


def write(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, (representation, settings, changes) in LIES.items():
        torch.manual_seed(0)
        spec = "q8" if "quantizer" in changes else "fp16"  # the payload of the quantizer the header names
        stream = bitstream.encode_model(representations.build(representation, 3, **settings), 32, 32,
                                        parse_quantizer(spec), "zlib")
        header = lie(json.loads(split(stream)[2]), changes)
        files[name] = with_header_text(stream, json.dumps(header, separators=(",", ":")).encode())
    for name, case in HONEST.items():
        files[name] = honest_stream(*case)
    if hasattr(bitstream, "MAX_DECODE_SECONDS"):  # a decoder with a limit in seconds: streams just within it
        for name, case in AT_LIMIT.items():
            files[f"{name}_at_limit"] = at_limit(*case)
    for name, data in files.items():
        (out / f"{name}.fbi").write_bytes(data)
        print(f"{out / name}.fbi: {len(data)} bytes, format {bitstream.VERSION}")
    sparse = out / "sparse_3gb.fbi"
    with open(sparse, "wb") as handle:
        handle.truncate(SPARSE_BYTES)  # a hole: no disk blocks, reads as zeros
    print(f"{sparse}: {SPARSE_BYTES} bytes, sparse")


def decode_one(path: str) -> None:
    """In a child process: `--decode path` as the CLI runs it, into a scratch --out; one line of outcome."""
    from fitbench.suites.compression import decode_file

    with tempfile.TemporaryDirectory() as scratch:
        start, printed = time.perf_counter(), io.StringIO()
        try:
            with redirect_stdout(printed):
                decode_file(Path(path), Path(scratch))
            outcome = printed.getvalue().splitlines()[0]
        except ValueError as error:
            outcome = f"error: {error}"
        print(f"{time.perf_counter() - start:.2f}\t{outcome!r}")


def time_files(paths: list[str], limit: float = 300.0) -> None:
    """Each file in its own process: wall, decode-only and CPU seconds, peak memory (max RSS), outcome."""
    print(f"{'file':26s} {'bytes':>10s} {'wall s':>7s} {'decode s':>8s} {'CPU s':>6s} {'peak MiB':>8s}  outcome")
    for path in paths:
        with tempfile.TemporaryFile("w+") as output:
            start = time.perf_counter()
            child = subprocess.Popen([sys.executable, __file__, "decode-one", path], stdout=output)
            usage = _wait(child, start + limit)
            wall = time.perf_counter() - start
            output.seek(0)
            lines = output.read().strip().splitlines() or [f"-\tkilled after {limit:.0f} s"]
        decode_seconds, outcome = (lines[-1].split("\t", 1) + [""])[:2]
        print(f"{Path(path).name:26s} {os.path.getsize(path):10d} {wall:7.2f} {decode_seconds:>8s} "
              f"{usage.ru_utime + usage.ru_stime:6.2f} {usage.ru_maxrss / 1024:8.0f}  {outcome[:300]}")


def _wait(child: subprocess.Popen, deadline: float):
    """The child's resource usage (CPU, max RSS) once it ends, killing it at `deadline`."""
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return usage
        if time.perf_counter() > deadline:
            child.kill()
        time.sleep(0.05)


# Models whose torch calls price COST_MODEL: every representation at its tiny and standard sizes, plus the audits'
# costly ones (a whole-image Gaussian splat, a large hash table, a fine bicubic grid, wide layers).
CALIBRATION = {
    **{f"{name} {size}": (name, {**representations.sized_overrides(name, size),
                                 **({"resolution": 256} if name == "gaussians_2d" else {})})
       for name in representations.list_representations() for size in ("tiny", "standard")},
    "gaussians_2d cover all": ("gaussians_2d", {"num_gaussians": 1024, "resolution": 512}),
    "hash_grid 2^18 table": ("hash_grid", {"log2_table_size": 18}),
    "grid 2048 bicubic": ("grid", {"resolution": 2048}),
    "siren 4 x 256": ("siren", {"width": 256, "depth": 4}),
    "fourier_features default": ("fourier_features", {}),
}
CALIBRATION_SIDE = 256  # pixels a side: one render chunk of 2^16 pixels
LARGE_CALL = 1 << 22  # bytes a call: a smaller call costs mostly its dispatch (COST_MODEL.call) and first touch
REPEATS = 3  # each op's time is the least of these (other processes on a shared machine only ever slow it)


class OpTimer(TorchFunctionMode):
    """Seconds, priced bytes, multiply-adds and calls of each torch function, by `op_name`."""

    def __init__(self):
        super().__init__()
        self.ops: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0, 0])

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        start = time.perf_counter()
        out = func(*args, **kwargs)
        totals = self.ops[sizing.op_name(func)]
        totals[0] += time.perf_counter() - start
        totals[1] += sizing.priced_bytes(func, args, kwargs, out)
        totals[2] += sizing.multiply_adds(func, args, out)
        totals[3] += 1
        return out


def calibration_model(name: str, settings: dict):
    torch.manual_seed(0)
    model = representations.build(name, 3, **settings).eval()
    if name == "gaussians_2d" and settings.get("num_gaussians") == 1024:
        with torch.no_grad():
            model.position.zero_(), model.cholesky.fill_(200.0)
    return model


def image_coordinates(side: int) -> torch.Tensor:
    grid_y, grid_x = torch.meshgrid(torch.arange(side) / side, torch.arange(side) / side, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1).reshape(-1, 2)


def time_ops(model, coords: torch.Tensor) -> dict[str, list[float]]:
    """Per op: [least seconds over REPEATS, priced bytes, multiply-adds, calls] of one forward."""
    with torch.no_grad():
        model(coords)  # warm-up
        runs = []
        for _ in range(REPEATS):
            timer = OpTimer()
            with timer:
                model(coords)
            runs.append(timer.ops)
    return {op: [min(run[op][0] for run in runs), *runs[0][op][1:]] for op in runs[0]}


def seconds_per_call(model) -> float:
    """Wall seconds per torch call of a one-pixel forward under the decoder's own Meter (its counting included)."""
    coords = image_coordinates(1)
    with torch.no_grad():
        model(coords)
        best = math.inf
        for _ in range(REPEATS):
            meter = sizing.Meter()
            start = time.perf_counter()
            with meter:
                model(coords)
            best = min(best, (time.perf_counter() - start) / max(meter.calls, 1))
    return best


def output_seconds(side: int = 1024) -> float:
    """Seconds per pixel and channel of everything `--decode` does around the model: coordinates, clamping, 8-bit
    conversion and the PNG, for noise (the slowest image to write), less the noise's own ops."""

    class Noise(torch.nn.Module):
        def forward(self, coords):
            return torch.rand(len(coords), 3)

    header = bitstream.StreamHeader("noise", None, {}, 3, side, side, "fp32", 0, 0)
    decoded = bitstream.DecodedStream(header, Noise(), "raw", 0, sizing.RenderCost(0.0, 0.0, 8.0, 0.0))
    best = math.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        Image.fromarray(decoded.image8()).save(io.BytesIO(), format="PNG")
        best = min(best, time.perf_counter() - start)
    noise = time_ops(Noise(), image_coordinates(side))["rand"][0]
    return (best - noise) / (side * side * 3)


def stored_seconds(values: int = 1 << 20) -> float:
    """Seconds per stored value of reading a payload (every coder) and building the model, the slowest coder."""
    side = int(math.sqrt(values / 3))
    torch.manual_seed(0)
    model = representations.build("grid", 3, resolution=side)
    with torch.no_grad():
        model.grids[0].uniform_(0, 1)
    worst = 0.0
    for spec, coder in (("fp32", "raw"), ("fp32", "lzma"), ("q12", "zlib"), ("q12", "ans")):
        data = bitstream.encode_model(model, 8, 8, parse_quantizer(spec), coder)
        best = math.inf
        for _ in range(REPEATS):
            start = time.perf_counter()
            bitstream.decode_stream(data, max_seconds=None)
            best = min(best, time.perf_counter() - start)
        worst = max(worst, best / (3 * side * side))
    return worst


def calibrate() -> None:
    """Measure COST_MODEL's prices on this machine and print them, with predicted against measured seconds. One
    intra-op thread, as `--decode` renders."""
    torch.set_num_threads(1)
    coords = image_coordinates(CALIBRATION_SIDE)
    timings = {case: time_ops(calibration_model(*CALIBRATION[case]), coords) for case in CALIBRATION}
    products = [(seconds, macs) for ops in timings.values() for seconds, _, macs, _ in ops.values() if macs > 1e8]
    multiply_add = min(seconds / macs for seconds, macs in products)  # the most efficient large product
    call = statistics.median(seconds_per_call(calibration_model(*case)) for case in CALIBRATION.values())
    byte: dict[str, float] = {}
    for ops in timings.values():  # the slowest seen, each op priced on calls large enough to price bytes
        for op, (seconds, size, macs, calls) in ops.items():
            if size >= LARGE_CALL * calls:
                price = max(seconds - call * calls - multiply_add * macs, 0.0) / size
                byte[op] = max(byte.get(op, 0.0), price)
    typical = statistics.median(byte.values())  # ops seen only in small calls; an op never seen: the slowest
    byte.update({op: typical for ops in timings.values() for op, (_, size, _, _) in ops.items()
                 if size and op not in byte})
    model = sizing.CostModel(call=call, multiply_add=multiply_add, byte_seconds=dict(sorted(byte.items())),
                      output_value=output_seconds(), stored_value=stored_seconds())
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; paste into bench/compression/sizing.py:")
    print("COST_MODEL = CostModel(")
    print(f"    call={model.call:.3g}, multiply_add={model.multiply_add:.3g}, output_value={model.output_value:.3g}, "
          f"stored_value={model.stored_value:.3g},")
    print("    byte_seconds={" + ", ".join(f'"{op}": {price:.3g}' for op, price in model.byte_seconds.items())
          + "},\n)")
    print(f"\n{'model (256^2 pixels, one forward)':40s} {'measured s':>10s} {'this model':>10s} {'COST_MODEL':>10s}")
    for case, ops in timings.items():
        measured = sum(seconds for seconds, *_ in ops.values())
        estimates = []
        for prices in (model, sizing.COST_MODEL):
            estimates.append(sum(prices.call * calls + prices.multiply_add * macs
                                 + prices.byte_seconds.get(op, prices.other_byte) * size
                                 for op, (_, size, macs, calls) in ops.items()))
        print(f"{case:40s} {measured:10.3f} {estimates[0]:10.3f} {estimates[1]:10.3f}")


if __name__ == "__main__":
    command, *arguments = sys.argv[1:] or ["help"]
    if command == "write":
        write(arguments[0])
    elif command == "time":
        time_files(arguments)
    elif command == "calibrate":
        calibrate()
    elif command == "decode-one":
        decode_one(arguments[0])
    else:
        sys.exit(f"usage: {Path(__file__).name} write DIR | time FILE... | calibrate")
