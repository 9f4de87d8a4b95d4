"""Stream header bytes of every registered representation at its standard size: JSON, DEFLATE, DEFLATE with the
format's preset dictionary (what streams store).

    python experiments/header_bytes.py
"""

import dataclasses
import json
import zlib

from fitbench import representations
from fitbench.compression.bitstream import HEADER_DICTIONARY, StreamHeader


def deflated(text: bytes, dictionary: bytes | None = None) -> int:
    encoder = zlib.compressobj(9, zlib.DEFLATED, -15, **({"zdict": dictionary} if dictionary else {}))
    return len(encoder.compress(text) + encoder.flush())


def main() -> None:
    totals = [0, 0, 0]
    names = representations.list_representations()
    for name in names:
        config = representations.make_config(name, **representations.sized_overrides(name, "standard"))
        header = StreamHeader(name, representations.get_entry(name).plugin, representations.model_settings(config),
                              3, 256, 256, "q8", 6, 12345)
        text = json.dumps(dataclasses.asdict(header), separators=(",", ":")).encode()
        sizes = (len(text), deflated(text), deflated(text, HEADER_DICTIONARY))
        totals = [t + s for t, s in zip(totals, sizes)]
        print(f"{name:18s} json {sizes[0]:4d}  deflate {sizes[1]:4d}  with dictionary {sizes[2]:4d} bytes")
    mean = [t / len(names) for t in totals]
    print(f"mean over {len(names)}: json {mean[0]:.0f}, deflate {mean[1]:.0f}, with dictionary {mean[2]:.0f} bytes "
          f"({8 * mean[2] / 256**2:.4f} bpp at 256^2)")


if __name__ == "__main__":
    main()
