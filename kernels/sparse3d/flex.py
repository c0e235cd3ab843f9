"""Block-sparse 3D attention on the GPU through PyTorch FlexAttention block masks.

Tokens are moved once per call into tile-major order with every tile padded to its full volume
(and the whole sequence to a multiple of the 128-slot block), so tiles line up with
FlexAttention's blocks. The block lists (which key blocks each query block needs, and which of
those are entirely kept so the kernel can skip the per-element mask) are computed at tile level
here, never from a dense token mask, so they stay cheap at 720p (~80k tokens). Padding slots are
masked out as keys; their query rows are computed and dropped. FlexAttention is imported lazily
(torch >= 2.5); it is compiled on CUDA and runs eagerly elsewhere (only to check the mask).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from .window import Grid, SparseWindow, tile_counts, token_axes, window_starts

BLOCK = 128  # FlexAttention's default query / key block


@dataclass(frozen=True)
class SlotLayout:
    """The padded tile-major layout: slot of every token, and per-slot fields the mask needs."""

    slot: torch.Tensor  # [L] int64: padded position of each row-major token
    n_slots: int  # multiple of BLOCK
    tile: torch.Tensor  # [S] tile id (n_tiles for the tail padding after the last tile)
    valid: torch.Tensor  # [S] bool: slot holds a real token
    is_global: torch.Tensor  # [S] bool: slot holds a token of a global frame
    window: torch.Tensor  # [n_tiles + 1, n_tiles + 1] bool: key tile inside query tile's window


def slot_layout(grid: Grid, spec: SparseWindow) -> SlotLayout:
    counts = tile_counts(grid, spec.tile)
    n_tiles = counts[0] * counts[1] * counts[2]
    volume = spec.tile[0] * spec.tile[1] * spec.tile[2]
    n_slots = -(-n_tiles * volume // BLOCK) * BLOCK
    coords = token_axes(grid)  # 3 x [L]
    tile_of = [c // t for c, t in zip(coords, spec.tile)]
    within = [c % t for c, t in zip(coords, spec.tile)]
    tile_id = (tile_of[0] * counts[1] + tile_of[1]) * counts[2] + tile_of[2]  # [L]
    slot = tile_id * volume + (within[0] * spec.tile[1] + within[1]) * spec.tile[2] + within[2]  # [L]

    valid = torch.zeros(n_slots, dtype=torch.bool)
    valid[slot] = True
    is_global = torch.zeros(n_slots, dtype=torch.bool)
    is_global[slot] = coords[0] < spec.global_frames
    tile = (torch.arange(n_slots) // volume).clamp(max=n_tiles)  # [S]

    # Tile-level window: per axis, key tile index within [start, start + width) of the query tile.
    tiles_3d = torch.stack(torch.meshgrid(*(torch.arange(n) for n in counts), indexing="ij"), -1).reshape(-1, 3)
    window = torch.zeros(n_tiles + 1, n_tiles + 1, dtype=torch.bool)
    inside = torch.ones(n_tiles, n_tiles, dtype=torch.bool)
    for axis, (n, w) in enumerate(zip(counts, spec.window)):
        width = min(w, n)
        lo = window_starts(n, width)[tiles_3d[:, axis]]  # [T] per query tile
        key = tiles_3d[:, axis]  # [T]
        inside &= (key[None, :] >= lo[:, None]) & (key[None, :] < lo[:, None] + width)
    window[:n_tiles, :n_tiles] = inside
    return SlotLayout(slot, n_slots, tile, valid, is_global, window)


def block_lists(layout: SlotLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """(needed, full), bool [Q_blocks, KV_blocks]: blocks with any kept pair, and blocks kept whole.

    Only real query slots count (padding rows are dropped), so more blocks qualify as full.
    """
    n_blocks, n_tiles1 = layout.n_slots // BLOCK, layout.window.shape[0]
    one_hot = torch.nn.functional.one_hot(layout.tile, n_tiles1).bool()  # [S, T+1]
    per_block = lambda rows: rows.view(n_blocks, BLOCK, -1).any(1)  # noqa: E731  [S, X] -> [blocks, X]
    q_tiles = per_block(one_hot & layout.valid[:, None]).float()  # [Qb, T+1]
    k_tiles = per_block(one_hot & (layout.valid & ~layout.is_global)[:, None]).float()  # [Kb, T+1]
    has_query = layout.valid.view(n_blocks, BLOCK).any(1)  # [Qb]
    has_global = (layout.valid & layout.is_global).view(n_blocks, BLOCK).any(1)  # [Kb]
    has_padding = (~layout.valid).view(n_blocks, BLOCK).any(1)  # [Kb]
    inside = q_tiles @ layout.window.float() @ k_tiles.T > 0  # [Qb, Kb] some pair in the window
    outside = q_tiles @ (~layout.window).float() @ k_tiles.T > 0  # [Qb, Kb] some pair out of it
    needed = has_query[:, None] & (inside | has_global[None, :])
    full = has_query[:, None] & ~outside & ~has_padding[None, :]
    return needed, full & needed


def _as_kv_lists(blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bool [Qb, Kb] -> (counts [1, 1, Qb], indices [1, 1, Qb, Kb]) with the kept block ids first."""
    counts = blocks.sum(1, dtype=torch.int32)
    order = torch.argsort((~blocks).to(torch.int8), dim=1, stable=True).to(torch.int32)
    return counts[None, None], order[None, None]


@dataclass(frozen=True)
class FlexPlan:
    slot: torch.Tensor  # [L] on the device
    n_slots: int
    block_mask: object  # torch.nn.attention.flex_attention.BlockMask


@lru_cache(maxsize=16)
def flex_plan(grid: Grid, spec: SparseWindow, device: torch.device) -> FlexPlan:
    from torch.nn.attention.flex_attention import BlockMask  # lazy: needs torch >= 2.5

    layout = slot_layout(grid, spec)
    needed, full = block_lists(layout)
    tile, valid, is_global = layout.tile.to(device), layout.valid.to(device), layout.is_global.to(device)
    window = layout.window.to(device)

    def mask_mod(b, h, q_idx, kv_idx):  # evaluated only inside partially kept blocks
        return valid[kv_idx] & (window[tile[q_idx], tile[kv_idx]] | is_global[kv_idx])

    partial_counts, partial_ids = _as_kv_lists(needed & ~full)
    full_counts, full_ids = _as_kv_lists(full)
    block_mask = BlockMask.from_kv_blocks(
        partial_counts.to(device), partial_ids.to(device), full_counts.to(device), full_ids.to(device),
        BLOCK_SIZE=BLOCK, mask_mod=mask_mod,
    )
    return FlexPlan(layout.slot.to(device), layout.n_slots, block_mask)


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
    compiled: bool = True,
) -> torch.Tensor:  # [B, L, H, D]
    from torch.nn.attention.flex_attention import flex_attention

    plan = flex_plan(tuple(grid), spec, q.device)
    b, _, h, d = q.shape

    def to_slots(x):  # [B, L, H, D] -> [B, H, S, D], padding slots zero
        padded = x.new_zeros(b, plan.n_slots, h, d)
        padded[:, plan.slot] = x
        return padded.transpose(1, 2)

    run = _compiled_flex() if compiled else flex_attention
    out = run(to_slots(q), to_slots(k), to_slots(v), block_mask=plan.block_mask)  # [B, H, S, D]
    return out.transpose(1, 2)[:, plan.slot]
