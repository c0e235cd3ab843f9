"""Dense reference for sparse3d: plain SDPA with the equivalent boolean token mask (for tests)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .window import Grid, SparseWindow, tile_counts, token_axes, window_starts


def sparse3d_mask(grid: Grid, spec: SparseWindow) -> torch.Tensor:  # bool [L, L], True = attend
    """Token-level mask written per axis: key tile inside the query tile's window on t, h and w."""
    coords = token_axes(grid)
    inside = torch.ones(len(coords[0]), len(coords[0]), dtype=torch.bool)
    for coord, tile, width, n_tiles in zip(coords, spec.tile, spec.window, tile_counts(grid, spec.tile)):
        tile_of = coord // tile  # [L]
        lo = window_starts(n_tiles, min(width, n_tiles))[tile_of]  # [L] per query token
        inside &= (tile_of[None, :] >= lo[:, None]) & (tile_of[None, :] < lo[:, None] + width)
    return inside | (coords[0] < spec.global_frames)[None, :]


def dense_masked_sparse3d(
    q: torch.Tensor,  # [B, L, H, D]
    k: torch.Tensor,
    v: torch.Tensor,
    grid: Grid,
    spec: SparseWindow,
) -> torch.Tensor:  # [B, L, H, D]
    mask = sparse3d_mask(grid, spec).to(q.device)  # [L, L]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)
