"""The outside audit's small streams that stalled `--decode` (issue 15, item 3), written for whichever fitbench is
installed, so a run before and after a change can be compared:

    python benchmarks/decode_audit.py write DIR
    for f in DIR/*.fbi; do /usr/bin/time -v python run_bench.py --suite compression --decode $f --out /tmp/audit; done
    for f in DIR/*.fbi; do python benchmarks/decode_audit.py time $f; done     # the decode alone, in one process each

Each file is a real stream of a small model whose header then lies (checksum recomputed): an FNET of depth 256
and 4096, a ReLU MLP and a SIREN declaring an 8192^2 image, and (within the decoder's pixel limit) 4096^2.
Stream format 1 is rewritten as it was (zlib body); format 2 through fitbench.compression.fuzz.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import torch

from fitbench import representations
from fitbench.compression import bitstream
from fitbench.compression.quantize import parse_quantizer

CASES = {  # file name: (representation, settings of the honest stream, header changes)
    "fnet_depth256": ("fnet", {"width": 2, "depth": 2}, {"config": {"depth": 256}}),
    "fnet_depth4096": ("fnet", {"width": 2, "depth": 2}, {"config": {"depth": 4096}}),
    "relu_mlp_8192": ("relu_mlp", {"width": 8, "depth": 2}, {"height": 8192, "width": 8192}),
    "siren_8192": ("siren", {"width": 8, "depth": 2}, {"height": 8192, "width": 8192}),
    "relu_mlp_4096": ("relu_mlp", {"width": 8, "depth": 2}, {"height": 4096, "width": 4096}),
    "siren_4096": ("siren", {"width": 8, "depth": 2}, {"height": 4096, "width": 4096}),
}


def lie(header: dict, changes: dict) -> dict:
    header = dict(header, config=dict(header["config"]))
    for key, value in changes.items():
        if key == "config":
            header["config"].update(value)
        else:
            header[key] = value
    return header


def write_version_1(stream: bytes, changes: dict) -> bytes:
    magic, version, coder_id, _ = struct.unpack_from("<4sBBI", stream)
    body = zlib.decompress(stream[10:])
    (length,) = struct.unpack_from("<H", body)
    header = lie(json.loads(body[2:2 + length]), changes)
    text = json.dumps(header, separators=(",", ":")).encode()
    coded = zlib.compress(struct.pack("<H", len(text)) + text + body[2 + length:], 9)
    return struct.pack("<4sBBI", magic, version, coder_id, zlib.crc32(coded)) + coded


def write_version_2(stream: bytes, changes: dict) -> bytes:
    from fitbench.compression.fuzz import split, with_header_text

    header = lie(json.loads(split(stream)[2]), changes)
    return with_header_text(stream, json.dumps(header, separators=(",", ":")).encode())


def time_decode(path: str) -> None:
    """Decode and render one file in this process: seconds, CPU seconds, peak memory, and the outcome line."""
    import resource
    import time

    from fitbench.compression.errors import BitstreamError

    data = Path(path).read_bytes()
    start, cpu = time.perf_counter(), time.process_time()
    try:
        decoded = bitstream.decode_stream(data)
        image = decoded.image8() if hasattr(decoded, "image8") else decoded.reconstruct()
        outcome = f"decoded {image.shape[0]}x{image.shape[1]}"
    except BitstreamError as error:
        outcome = f"refused: {error}"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{Path(path).name}: {time.perf_counter() - start:.2f} s ({time.process_time() - cpu:.2f} s CPU), peak "
          f"{peak:.0f} MiB, format {bitstream.VERSION}: {outcome}")


def write(folder: str) -> None:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name, (representation, settings, changes) in CASES.items():
        torch.manual_seed(0)
        model = representations.build(representation, 3, **settings)
        stream = bitstream.encode_model(model, 32, 32, parse_quantizer("fp16"), "zlib")
        data = (write_version_1 if bitstream.VERSION == 1 else write_version_2)(stream, changes)
        (out / f"{name}.fbi").write_bytes(data)
        print(f"{out / name}.fbi: {len(data)} bytes, format {bitstream.VERSION}")


if __name__ == "__main__":
    {"write": write, "time": time_decode}[sys.argv[1]](sys.argv[2])
