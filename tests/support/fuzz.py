"""Mutated streams, to check that decoding refuses damage and lies cleanly, quickly and in bounded memory.

    python tests/support/fuzz.py --count 10000          # the long run, from the checkout (docs/compression.md)

Mutants of real streams (several representations, quantizers and coders): truncations; flipped, inserted,
deleted and spliced bytes; the same with the checksum recomputed, so the damage reaches the parsers; header
lies with a recomputed checksum (a field or setting set to a boundary, huge, negative, fractional or wrong-typed
value, removed, added, duplicated, or NaN); random bytes. Each mutant must either decode and render (a lie that
still describes a valid stream, such as another seed) or raise one `BitstreamError` line; anything else is a
crash. tests/test_compression_fuzz.py runs a few hundred.

Test code, not part of the installed package: it forges streams with the format's internals (the prefix, the
header's deflate), which the decoder must never trust; `split`, `restamp` and `with_header_text` serve the tests
of the decoder and experiments/decode_audit.py too.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field

import torch

from fitbench import representations
from fitbench.compression.bitstream import HEADER_LENGTH, MAGIC, PREFIX, _deflate, _inflate, decode_stream, encode_model
from fitbench.compression.errors import MAX_MESSAGE, BitstreamError
from fitbench.compression.quantize import parse_quantizer

# (representation, quantizer, coder) of the streams mutated; representations at their "tiny" size class
BASES = (("siren", "q8", "ans"), ("relu_mlp", "fp16", "lzma"), ("fnet", "q6c", "zlib"), ("rbf", "q8", "raw"),
         ("positional", "q5", "ans"), ("fourier_features", "fp32", "lzma"))
LIE_VALUES = (0, -1, 1, 2, 3, 7, 255, 1024, 4097, 65536, 2**24 + 1, 2**31, 2**63, 10**30, 0.5, -0.5, 1e-300, 1e308,
              "", "x" * 3000, None, True, False, [], {}, [1, 2])


def base_streams(side: int = 24) -> list[bytes]:
    """Real streams of small models with non-trivial weights (the mutation sources)."""
    streams = []
    for name, spec, coder in BASES:
        if name not in representations.list_representations():
            continue
        torch.manual_seed(0)
        model = representations.build(name, 3, **representations.sized_overrides(name, "tiny"))
        with torch.no_grad():
            for p in model.parameters():
                if p.requires_grad:
                    p.add_(0.05 * torch.randn_like(p))
        streams.append(encode_model(model, side, side, parse_quantizer(spec), coder))
    return streams


def restamp(rest: bytes, version: int = 2, coder_id: int = 0) -> bytes:
    """A stream whose checksum is right for `rest` (everything after the prefix)."""
    return PREFIX.pack(MAGIC, version, coder_id, zlib.crc32(rest)) + rest


def split(stream: bytes) -> tuple[int, int, bytes, bytes]:
    """(version, coder id, header JSON text, coded payload) of a valid stream."""
    _, version, coder_id, _ = PREFIX.unpack_from(stream)
    (length,) = HEADER_LENGTH.unpack_from(stream, PREFIX.size)
    start = PREFIX.size + HEADER_LENGTH.size
    return version, coder_id, _inflate(stream[start:start + length]), stream[start + length:]


def with_header_text(stream: bytes, text: bytes) -> bytes:
    """`stream` with its header JSON replaced by `text` (deflated as the format does) and a valid checksum."""
    version, coder_id, _, payload = split(stream)
    stored = _deflate(text)
    return restamp(HEADER_LENGTH.pack(len(stored) % 65536) + stored + payload, version, coder_id)


def header_lie(stream: bytes, rng: random.Random) -> bytes:
    """One header field or setting changed (or removed, added, duplicated, made NaN), checksum recomputed."""
    _, _, text, _ = split(stream)
    header = json.loads(text)
    config = header["config"]
    kind = rng.choice(("field", "setting", "setting", "remove", "add", "duplicate", "nan", "scale"))
    if kind == "duplicate":
        key = rng.choice(list(header))
        return with_header_text(stream, text.replace(b"{", b'{"%s":%s,' % (key.encode(), json.dumps(
            rng.choice(LIE_VALUES)).encode()), 1))
    if kind == "nan":
        return with_header_text(stream, text.replace(b"0.", b"NaN,", 1) if rng.random() < 0.5 else
                                text.replace(b'"height":', b'"height":Infinity,"x":', 1))
    target = config if kind in ("setting", "scale") or (kind in ("remove", "add") and rng.random() < 0.5) else header
    key = rng.choice(list(target)) if target else "width"
    if kind == "remove":
        target.pop(key, None)
    elif kind == "add":
        target[rng.choice(("evil", "__class__", "width2", "lr", "pickle"))] = rng.choice(LIE_VALUES)
    elif kind == "scale" and isinstance(target.get(key), (int, float)) and not isinstance(target.get(key), bool):
        target[key] = type(target[key])(target[key] * rng.choice((2, 8, 64, 1024, -1)))
    else:
        target[key] = rng.choice(LIE_VALUES)
    return with_header_text(stream, json.dumps(header).encode())


def byte_damage(stream: bytes, rng: random.Random, keep_checksum_valid: bool) -> bytes:
    data = bytearray(stream)
    start = PREFIX.size if keep_checksum_valid else 0
    position = rng.randrange(start, len(data))
    kind = rng.choice(("flip", "insert", "delete", "splice"))
    if kind == "flip":
        data[position] ^= 1 << rng.randrange(8)
    elif kind == "insert":
        data.insert(position, rng.randrange(256))
    elif kind == "delete":
        del data[position]
    else:
        data[position:position + 8] = rng.randbytes(8)
    if keep_checksum_valid:
        _, version, coder_id, _ = PREFIX.unpack_from(stream)
        return restamp(bytes(data[PREFIX.size:]), version, coder_id)
    return bytes(data)


def mutants(streams: list[bytes], count: int, seed: int = 0):
    """`count` (kind, mutant) pairs, about a third of them header lies with a valid checksum."""
    rng = random.Random(seed)
    kinds = ("header lie", "header lie", "header lie", "valid-checksum damage", "valid-checksum damage", "damage",
             "truncation", "random bytes", "plausible prefix")
    for _ in range(count):
        kind, base = rng.choice(kinds), rng.choice(streams)
        if kind == "header lie":
            yield kind, header_lie(base, rng)
        elif kind == "valid-checksum damage":
            yield kind, byte_damage(base, rng, True)
        elif kind == "damage":
            yield kind, byte_damage(base, rng, False)
        elif kind == "truncation":
            yield kind, base[:rng.randrange(len(base))]
        elif kind == "random bytes":
            yield kind, rng.randbytes(rng.randrange(0, 400))
        else:
            yield kind, restamp(rng.randbytes(rng.randrange(0, 300)), rng.choice((1, 2, 2, 3)), rng.randrange(5))


@dataclass
class FuzzReport:
    outcomes: Counter = field(default_factory=Counter)  # (kind, "refused" | "decoded") -> count
    crashes: list[str] = field(default_factory=list)  # mutants that raised anything but a one-line BitstreamError
    slowest: tuple[float, str, str] = (0.0, "", "")  # (seconds, kind, outcome or message)

    def line(self) -> str:
        total = sum(self.outcomes.values())
        refused = sum(v for (_, outcome), v in self.outcomes.items() if outcome == "refused")
        return (f"{total} mutants: {refused} refused with one line, {total - refused - len(self.crashes)} decoded "
                f"and rendered, {len(self.crashes)} crashes; slowest {self.slowest[0]:.3f} s ({self.slowest[1]}: "
                f"{self.slowest[2][:120]})")


def check(data: bytes) -> str:
    """'decoded' (and rendered), 'refused' (one bounded BitstreamError line), or raises what a crash raised."""
    try:
        decode_stream(data).image8()
        return "decoded"
    except BitstreamError as error:
        message = str(error)
        if "\n" in message or len(message) > MAX_MESSAGE:
            raise AssertionError(f"error message is not one bounded line: {message[:200]!r}") from None
        return "refused"


def fuzz(count: int, seed: int = 0) -> FuzzReport:
    report = FuzzReport()
    for kind, data in mutants(base_streams(), count, seed):
        start = time.perf_counter()
        try:
            outcome = check(data)
        except Exception as error:  # noqa: BLE001 - the point is to find these
            report.crashes.append(f"{kind}: {type(error).__name__}: {str(error)[:200]}")
            outcome = "crash"
        seconds = time.perf_counter() - start
        report.outcomes[(kind, outcome)] += 1
        if seconds > report.slowest[0]:
            report.slowest = (seconds, kind, outcome)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    report = fuzz(args.count, args.seed)
    for (kind, outcome), number in sorted(report.outcomes.items()):
        print(f"  {kind:22s} {outcome:8s} {number}")
    for crash in report.crashes[:20]:
        print(f"  CRASH {crash}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.line())
    print(f"wall {time.perf_counter() - start:.0f} s, cpu {time.process_time() - cpu:.0f} s, peak memory (max RSS of "
          f"the process) {peak:.0f} MiB")
    return 1 if report.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
