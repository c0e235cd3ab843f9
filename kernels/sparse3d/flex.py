"""Block-sparse 3D attention on the GPU through PyTorch FlexAttention block masks.

Tokens are moved once per call into tile-major order with every tile padded to a full tile
(`tile` volume slots), so tiles line up with FlexAttention's 128-token blocks and whole blocks
outside the window are skipped by the kernel. Padding slots are masked out as keys; their query
rows are computed and dropped. FlexAttention is imported lazily (torch >= 2.5); it is compiled on
CUDA and runs eagerly elsewhere (slow, only useful to check the mask on small inputs).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .window import Grid, SparseWindow, tile_counts, token_axes, window_starts


@dataclass(frozen=True)
class TileLayout:
    slot: torch.Tensor  # [L] int64: padded tile-major position of each row-major token
    padded_length: int
    block_mask: object  # torch.nn.attention.flex_attention.BlockMask over padded_length


def _slot_fields(grid: Grid, spec: SparseWindow):
    """Per token: its padded slot; per slot: tile coordinates, window starts, key validity, global flag."""
    counts = tile_counts(grid, spec.tile)
    volume = spec.tile[0] * spec.tile[1] * spec.tile[2]
    n_slots = counts[0] * counts[1] * counts[2] * volume
    coords = token_axes(grid)  # 3 x [L]
    tile_idx = [c // t for c, t in zip(coords, spec.tile)]
    within = [c % t for c, t in zip(coords, spec.tile)]
    tile_linear = (tile_idx[0] * counts[1] + tile_idx[1]) * counts[2] + tile_idx[2]
    within_linear = (within[0] * spec.tile[1] + within[1]) * spec.tile[2] + within[2]
    slot = tile_linear * volume + within_linear  # [L]

    slot_tile_linear = torch.arange(n_slots) // volume  # [S] tiles exist even where slots are padding
    slot_tiles = [
        slot_tile_linear // (counts[1] * counts[2]),
        slot_tile_linear // counts[2] % counts[1],
        slot_tile_linear % counts[2],
    ]
    widths = [min(w, n) for w, n in zip(spec.window, counts)]
    slot_starts = [window_starts(n, w)[t] for n, w, t in zip(counts, widths, slot_tiles)]
    valid = torch.zeros(n_slots, dtype=torch.bool)
    valid[slot] = True
    is_global = torch.zeros(n_slots, dtype=torch.bool)
    is_global[slot] = coords[0] < spec.global_frames
    return slot, n_slots, slot_tiles, slot_starts, widths, valid, is_global


@lru_cache(maxsize=16)
def tile_layout(grid: Grid, spec: SparseWindow, device: torch.device) -> TileLayout:
    from torch.nn.attention.flex_attention import create_block_mask  # lazy: needs torch >= 2.5

    slot, n_slots, tiles, starts, widths, valid, is_global = _slot_fields(grid, spec)
    tiles, starts = [t.to(device) for t in tiles], [s.to(device) for s in starts]
    valid, is_global = valid.to(device), is_global.to(device)

    def mask_mod(b, h, q_idx, kv_idx):
        inside = valid[kv_idx]
        for axis in range(3):
            key_tile, lo = tiles[axis][kv_idx], starts[axis][q_idx]
            inside = inside & (key_tile >= lo) & (key_tile < lo + widths[axis])
        return inside | is_global[kv_idx]

    block_mask = create_block_mask(mask_mod, None, None, n_slots, n_slots, device=device)
    return TileLayout(slot.to(device), n_slots, block_mask)


@lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_sparse3d(
    q: torch.Tensor,  # [B, L, H, D]
    k: torch.Tensor,
    v: torch.Tensor,
    grid: Grid,
    spec: SparseWindow,
) -> torch.Tensor:  # [B, L, H, D]
    from torch.nn.attention.flex_attention import flex_attention

    layout = tile_layout(tuple(grid), spec, q.device)
    b, _, h, d = q.shape

    def to_tiles(x):  # [B, L, H, D] -> [B, H, S, D], padding slots zero
        padded = x.new_zeros(b, layout.padded_length, h, d)
        padded[:, layout.slot] = x
        return padded.transpose(1, 2)

    run = _compiled_flex() if q.device.type == "cuda" else flex_attention
    out = run(to_tiles(q), to_tiles(k), to_tiles(v), block_mask=layout.block_mask)  # [B, H, S, D]
    return out.transpose(1, 2)[:, layout.slot]
