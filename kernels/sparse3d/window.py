"""Tile layout of the latent grid and the sliding-tile window: which key tiles each query tile sees.

Tokens are in the DiT's row-major (t, h, w) order. The grid is cut into tiles of `tile` tokens
(edge tiles may be partial when the grid does not divide). A query tile attends to a window of
`window` tiles per axis, centred on it and shifted inwards at the borders so that every query
tile sees the same number of tiles (as sliding-tile attention does), plus the tokens of the
first `global_frames` latent frames, which every query sees (e.g. the conditioning frame of I2V).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

Grid = tuple[int, int, int]


@dataclass(frozen=True)
class SparseWindow:
    tile: Grid = (2, 8, 8)  # tokens per tile along (t, h, w)
    window: Grid = (3, 3, 3)  # tiles per window along (t, h, w); larger than the grid = the whole axis
    global_frames: int = 0  # leading latent frames visible to every query

    def __post_init__(self):
        for name in ("tile", "window"):
            value = getattr(self, name)
            if len(value) != 3 or any(not isinstance(n, int) or n < 1 for n in value):
                raise ValueError(f"SparseWindow.{name} must be three positive ints (t, h, w), got {value!r}")
        if not isinstance(self.global_frames, int) or self.global_frames < 0:
            raise ValueError(f"SparseWindow.global_frames must be an int >= 0, got {self.global_frames!r}")


def check_grid(grid: Grid, length: int) -> None:
    """Raise a clear error when the token count does not match the latent grid."""
    if len(grid) != 3 or any(not isinstance(n, int) or n < 1 for n in grid):
        raise ValueError(f"sparse3d grid must be three positive ints (frames, height, width) in tokens, got {grid!r}")
    f, h, w = grid
    if f * h * w != length:
        raise ValueError(
            f"sparse3d grid {tuple(grid)} holds {f * h * w} tokens but q/k/v have {length}; "
            "pass the patchified latent grid (frames, height // patch, width // patch) of this call"
        )


def tile_counts(grid: Grid, tile: Grid) -> Grid:
    return tuple(-(-n // t) for n, t in zip(grid, tile))


def window_starts(n_tiles: int, width: int) -> torch.Tensor:  # [n_tiles]
    """First key tile of each query tile's window along one axis (centred, kept inside the grid)."""
    index = torch.arange(n_tiles)
    return (index - (width - 1) // 2).clamp(0, max(n_tiles - width, 0))


def token_axes(grid: Grid) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # 3 x [L]
    """Frame, row and column of every token in row-major order."""
    f, h, w = grid
    t_ax, h_ax, w_ax = torch.meshgrid(torch.arange(f), torch.arange(h), torch.arange(w), indexing="ij")
    return t_ax.reshape(-1), h_ax.reshape(-1), w_ax.reshape(-1)


def density(grid: Grid, spec: SparseWindow) -> float:
    """Fraction of (query, key) token pairs the window keeps."""
    kept = 0
    for q_idx, k_idx in build_groups(grid, spec):
        kept += len(q_idx) * len(k_idx)
    length = grid[0] * grid[1] * grid[2]
    return kept / (length * length)


def build_groups(grid: Grid, spec: SparseWindow) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Query tiles grouped by identical key sets: a list of (query token ids, key token ids), int64 on CPU.

    Every token is a query of exactly one group, so the groups together cover the output once.
    """
    coords = token_axes(grid)  # 3 x [L] token position
    tiles = [c // t for c, t in zip(coords, spec.tile)]  # 3 x [L] tile position of each token
    counts = tile_counts(grid, spec.tile)
    widths = [min(w, n) for w, n in zip(spec.window, counts)]
    # Window start of each token's query tile; tokens with equal starts on all axes share keys.
    starts = [window_starts(n, w)[tile] for n, w, tile in zip(counts, widths, tiles)]  # 3 x [L]
    group_id = (starts[0] * counts[1] + starts[1]) * counts[2] + starts[2]  # [L]
    is_global = coords[0] < spec.global_frames  # [L]
    groups = []
    for gid in torch.unique(group_id).tolist():
        q_idx = torch.nonzero(group_id == gid).flatten()
        first = q_idx[0]
        in_window = torch.ones_like(is_global)  # [L]
        for axis in range(3):
            lo = starts[axis][first]
            in_window &= (tiles[axis] >= lo) & (tiles[axis] < lo + widths[axis])
        groups.append((q_idx, torch.nonzero(in_window | is_global).flatten()))
    return groups
