"""Run any fitbench command with glibc's default allocator: the engine as it was before
`hardware.keep_freed_memory()`, for before/after measurements in the same checkout.

    python experiments/glibc_allocator.py --suite speed --speed-parts breakdown --no-compile --out /tmp/before

Everything after the script's name is passed to `run_bench.py` unchanged. glibc's defaults unmap every freed
block above its mmap threshold (at most 32 MB), so each full-batch step at 65,536 pixels page-faults its
activations in again; compare with the same command run through `run_bench.py`.
"""

import sys

from fitbench import cli, engine

if __name__ == "__main__":
    engine.keep_freed_memory = lambda: False  # the engine's only call site (engine.make_optimizer)
    print("allocator: glibc defaults (freed blocks above the mmap threshold go back to the OS)", file=sys.stderr)
    sys.exit(cli.main())
