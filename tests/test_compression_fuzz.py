"""A short fuzz run: mutated streams (CRC-valid header lies included) each decode or fail with one clear line.

The long run is a command: `python tests/support/fuzz.py --count 10000` (docs/compression.md).
"""

from support.fuzz import base_streams, check, fuzz


def test_hundreds_of_mutants_decode_or_fail_with_one_bounded_line():
    report = fuzz(400, seed=1)
    assert report.crashes == []
    kinds = {kind for kind, _ in report.outcomes}
    assert kinds == {"header lie", "valid-checksum damage", "damage", "truncation", "random bytes", "plausible prefix"}
    assert report.outcomes[("header lie", "refused")] > 50 and sum(report.outcomes.values()) == 400


def test_the_fuzz_sources_are_valid_streams_of_several_representations():
    streams = base_streams()
    assert len(streams) >= 5 and all(check(stream) == "decoded" for stream in streams)
    assert check(b"FBIC") == "refused"
