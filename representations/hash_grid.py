"""Multiresolution hash encoding + a small MLP (Müller et al., SIGGRAPH 2022; NVlabs/tiny-cuda-nn, instant-ngp).

L levels of feature grids, level l at N_l = N_min b^l cells per side. Each level stores its grid corners' F features
in a table of at most T = 2^log2_table_size entries: densely (index x + y N_l) where the level's grid fits in the
table, as tiny-cuda-nn does on coarse levels, and through the spatial hash (x * 1) XOR (y * 2654435761) mod T
where it does not. A coordinate's features are the bilinear interpolation of its cell's four corners at every
level, concatenated (L F values) and fed to a ReLU MLP.

Written after tiny-cuda-nn's `GridEncoding` (include/tiny-cuda-nn/encodings/grid.h): the same per-level scale and
resolution (computed in float32 as it does), the same half-cell offset between levels, the same index arithmetic,
table sizes and parameter layout, so its tables load into tiny-cuda-nn unchanged. Where `tinycudann` imports and
the input is on CUDA, that layout lets the same parameters run through tiny-cuda-nn's HashGrid kernel
(`backend="auto"`); everywhere else this file's PyTorch code runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from .encodings import EncodedMLP, Encoding
from .mlp import MLP
from .registry import RepresentationConfig, SizeKnob, TrainingGrid, register, require

PRIMES = (1, 2654435761)  # tiny-cuda-nn's first two hash primes (the paper's pi_1, pi_2)
UINT32 = 0xFFFFFFFF
MAX_TABLE_VALUES = 1 << 29  # levels x entries x features: 2 GB of float32 (the paper's T = 2^24 at L = 16, F = 2)
MAX_SCALE = 1 << 30  # the finest level's cells per side; keeps y * 2654435761 inside int64


@dataclass
class HashGridConfig(RepresentationConfig):
    # Encoding: tiny-cuda-nn's mlp_learning_an_image config (data/config_hash.json), which is the paper's image setup.
    levels: int = 16  # L
    features_per_level: int = 2  # F
    log2_table_size: int = 15  # T = 2^15 (the paper explores 2^14 .. 2^24)
    base_resolution: int = 16  # N_min
    per_level_scale: float = 1.5  # b: N_max = 16 * 1.5^15 ~ 7000 cells per side (the paper's Table 1: b in [1.26, 2])
    # The paper sets N_max to the finest detail of the data: N_max = finest_sides x the training grid's side, and
    # b = (N_max / N_min)^(1 / (L - 1)) (at least 1); None: per_level_scale as given.
    finest_sides: float | None = None
    FOLLOWS = {"finest_sides": "per_level_scale"}
    # MLP: the same config's FullyFusedMLP, 2 hidden x 64, ReLU, linear output
    width: int = 64
    depth: int = 2
    # Optimiser: the same config's Adam (it adds l2_reg 1e-6 and a relative L2 loss, which the engine does not)
    lr: float = 1e-2
    adam_betas: tuple[float, float] = (0.9, 0.99)
    adam_eps: float = 1e-15
    # auto: tiny-cuda-nn's kernel where `tinycudann` imports and the input is on CUDA; torch: always this file's code
    backend: Literal["auto", "torch"] = "auto"

    def validate(self) -> None:
        super().validate()
        require(1 <= self.levels <= 32, "levels", "in 1..32 (tiny-cuda-nn's limit)")
        require(self.features_per_level in (1, 2, 4, 8), "features_per_level", "1, 2, 4 or 8 (tiny-cuda-nn's)")
        require(1 <= self.log2_table_size <= 24, "log2_table_size", "in 1..24")
        require(self.levels * self.features_per_level << self.log2_table_size <= MAX_TABLE_VALUES, "log2_table_size",
                f"small enough that levels x features x 2^log2_table_size <= {MAX_TABLE_VALUES}")
        require(1 <= self.base_resolution <= 1 << 16, "base_resolution", "in 1..65536")
        require(1 <= self.per_level_scale <= 16, "per_level_scale", "in [1, 16]")
        finest = self.base_resolution * self.per_level_scale ** (self.levels - 1)
        require(finest <= MAX_SCALE, "per_level_scale", f"such that base_resolution * b^(levels-1) <= {MAX_SCALE}")
        require(1 <= self.width <= 4096, "width", "in 1..4096")
        require(0 <= self.depth <= 64, "depth", "in 0..64 (hidden layers)")

    def follow_grid(self, grid: TrainingGrid) -> dict:
        if self.finest_sides is None or self.levels == 1:
            return {}
        finest = self.finest_sides * grid.side
        return {"per_level_scale": max(1.0, (finest / self.base_resolution) ** (1 / (self.levels - 1)))}


@dataclass(frozen=True)
class Level:
    scale: float  # position = x * scale + 0.5 in cell units
    resolution: int  # grid corners per side
    entries: int  # table entries
    dense: bool  # one entry per corner (no hash)


def level_layout(config: HashGridConfig) -> list[Level]:
    """tiny-cuda-nn's per-level geometry: scale = 2^(l log2 b) N_min - 1 in float32, resolution = ceil(scale) + 1,
    entries = min(resolution^2 rounded up to a multiple of 8, T); dense where that fits in T."""
    cpu = torch.device("cpu")  # explicit: this runs under `with torch.device("meta")` too
    log2_scale = torch.log2(torch.tensor(config.per_level_scale, dtype=torch.float32, device=cpu))
    levels = []
    for level in range(config.levels):
        scale = torch.exp2(torch.tensor(level, dtype=torch.float32, device=cpu) * log2_scale)
        scale = float(scale * config.base_resolution - 1)
        resolution = math.ceil(scale) + 1
        dense_entries = -(-resolution**2 // 8) * 8
        entries = min(dense_entries, 1 << config.log2_table_size)
        levels.append(Level(scale, resolution, entries, dense_entries <= entries))
    return levels


def corner_index(x: Tensor, y: Tensor, resolution: Tensor, entries: Tensor, dense: Tensor) -> Tensor:
    """Table entries of integer corners (x, y): x + y N where the level is dense, else the spatial hash
    (x * 1) XOR (y * 2654435761), mod the level's entries. tiny-cuda-nn's uint32 arithmetic, in int64 masked to
    32 bits. Arguments broadcast (levels along the last dimension)."""
    hashed = (x & UINT32) ^ (((y & UINT32) * PRIMES[1]) & UINT32)
    return torch.where(dense, x + y * resolution, hashed) % entries


class HashGridEncoding(Encoding):
    """Coordinates (N, 2) in [0, 1]^2 -> (N, levels x features_per_level), level-major.

    The table is one flat parameter in tiny-cuda-nn's layout (level after level, entry after entry, feature after
    feature), initialised U(-1e-4, 1e-4) as tiny-cuda-nn initialises it. All levels and the four corners of each
    are gathered in one lookup.
    """

    def __init__(self, config: HashGridConfig):
        super().__init__(2)
        self.config = config
        levels = level_layout(config)
        self.features = config.features_per_level
        entries = [level.entries for level in levels]
        # per-level geometry, rebuilt from the config (never stored: persistent=False)
        for name, values, dtype in [("scale", [level.scale for level in levels], torch.float32),
                                    ("resolution", [level.resolution for level in levels], torch.long),
                                    ("entries", entries, torch.long),
                                    ("offset", [sum(entries[:i]) for i in range(len(entries))], torch.long),
                                    ("dense", [level.dense for level in levels], torch.bool)]:
            self.register_buffer(name, torch.tensor(values, dtype=dtype), persistent=False)
        self.table = nn.Parameter(torch.empty(sum(entries) * self.features).uniform_(-1e-4, 1e-4))

    def get_out_dim(self) -> int:
        return len(self.scale) * self.features

    def forward(self, coords: Tensor) -> Tensor:
        if self._tcnn_applies(coords):
            return _tcnn_encoding(self.config, coords.device, self.table)(coords).float()
        position = coords[:, None, :] * self.scale[:, None] + 0.5  # (N, L, 2) in cell units, half a cell offset
        corner = torch.floor(position)
        fraction = position - corner
        corner = corner.long()
        indices, weights = [], []
        for dx in (0, 1):
            for dy in (0, 1):
                x, y = corner[..., 0] + dx, corner[..., 1] + dy
                indices.append(corner_index(x, y, self.resolution, self.entries, self.dense) + self.offset)
                weights.append((fraction[..., 0] if dx else 1 - fraction[..., 0]) *
                               (fraction[..., 1] if dy else 1 - fraction[..., 1]))
        index = torch.stack(indices, -1)  # (N, L, 4); index_select's backward (index_add) is ~10x embedding's on CPU
        corners = self.table.view(-1, self.features).index_select(0, index.flatten()).view(*index.shape, -1)
        return (torch.stack(weights, -1)[..., None] * corners).sum(2).flatten(1)

    def _tcnn_applies(self, coords: Tensor) -> bool:
        """tiny-cuda-nn runs this module's own table on CUDA inputs; stacked or functional weights (vmap,
        bench/batched.py) and CUDA-graph capture take the PyTorch path."""
        return (self.config.backend == "auto" and coords.is_cuda and isinstance(self.table, nn.Parameter)
                and not torch.cuda.is_current_stream_capturing() and tcnn_available())


def tcnn_config(config: HashGridConfig) -> dict:
    """The same encoding as a tiny-cuda-nn HashGrid config."""
    return {"otype": "HashGrid", "n_levels": config.levels, "n_features_per_level": config.features_per_level,
            "log2_hashmap_size": config.log2_table_size, "base_resolution": config.base_resolution,
            "per_level_scale": config.per_level_scale}


_TCNN: dict = {}


def tcnn_available() -> bool:
    if "module" not in _TCNN:
        try:
            import tinycudann  # noqa: F401 - raises EnvironmentError without CUDA, ImportError when not installed
            _TCNN["module"] = tinycudann
        except Exception:  # noqa: BLE001 - any failure means: use the PyTorch path
            _TCNN["module"] = None
    return _TCNN["module"] is not None


def _tcnn_encoding(config: HashGridConfig, device: torch.device, table: nn.Parameter) -> nn.Module:
    """A tiny-cuda-nn Encoding of this config (made once per config and device) running on `table`."""
    key = (tuple(sorted(tcnn_config(config).items())), str(device))
    if key not in _TCNN:
        with torch.cuda.device(device):
            encoding = _TCNN["module"].Encoding(2, tcnn_config(config), dtype=torch.float32)
        if encoding.params.numel() != table.numel():
            raise RuntimeError(f"tiny-cuda-nn's HashGrid has {encoding.params.numel()} parameters where this "
                               f"encoding has {table.numel()}; use hash_grid.backend=torch")
        _TCNN[key] = encoding
    encoding = _TCNN[key]
    encoding.params = table  # the kernel reads whichever model's table it is given
    return encoding


@register(
    "hash_grid", HashGridConfig,
    source="Müller et al. 2022 (instant-ngp), tiny-cuda-nn mlp_learning_an_image (data/config_hash.json): L = 16, "
    "F = 2, T = 2^15, N_min = 16, b = 1.5, 2 x 64 ReLU MLP, Adam lr 1e-2, betas (0.9, 0.99), eps 1e-15",
    # The table size is the paper's own size parameter (its T sweep); each step doubles the fine levels' tables.
    knob=SizeKnob("log2_table_size", 2, 24),
    # The paper sets N_max to the finest detail of the data: N_max = N_min b^(L-1) = the training grid's side.
    # tiny (CI: 64^2 images): 4 levels 4, 8, 16, 32 (b = 2), all dense in 2^10 entries, 2 x 32 MLP (~4.2k values);
    # standard: the 16 levels from 16 to the training grid's side (128 at 256^2 images: b = 8^(1/15)) in
    # 2^10-entry tables (~35k values on RGB; a few hundred fewer on coarser grids, whose coarse levels are smaller).
    sizes={"tiny": {"levels": 4, "base_resolution": 4, "per_level_scale": 2.0, "log2_table_size": 10, "width": 32},
           "standard": {"log2_table_size": 10, "finest_sides": 1.0}},
    search={"lr": (3e-3, 1e-2, 3e-2, 1e-1), "finest_sides": (0.5, 1.0, 2.0)},
    batchable=True,
)
def hash_grid(config: HashGridConfig, out_features: int):
    """Multiresolution hash encoding (L x F features, T-entry tables) + ReLU MLP, linear output."""
    encoding = HashGridEncoding(config)
    return EncodedMLP(encoding, MLP(encoding.get_out_dim(), out_features, config.width, config.depth,
                                    sigmoid_output=False))
