"""Forward values a custom backward may reuse instead of recomputing them, within a memory budget.

The fused layers (fnet's Fourier sum, gaussians_2d's splatting) work block by block so that memory stays bounded
at any size; where a call's blocks are small enough to keep, keeping them spares the backward a second forward.
"""

from __future__ import annotations

from torch import Tensor

KEEP_FLOATS = 1 << 24  # floats one call may keep (64 MB of fp32); blocks past it are recomputed


class KeptBlocks:
    """Each block's forward tensors in order, or None for a block past the budget (read when constructed)."""

    def __init__(self):
        self.room, self.blocks = KEEP_FLOATS, []

    def offer(self, *tensors: Tensor) -> None:
        size = sum(t.numel() for t in tensors)
        keep = size <= self.room
        self.room -= size if keep else 0
        self.blocks.append(tensors if keep else None)

    def __iter__(self):
        return iter(self.blocks)
