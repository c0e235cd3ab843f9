"""Block-sparse 3D attention in plain torch: really skips the masked key tiles (any device, fast on CPU).

Query tiles with the same window share one key set; for each such group the query and key
tokens are gathered and fed to one dense SDPA call, so the work is proportional to the kept
(query, key) pairs. SDPA's CPU kernel is most efficient with >= 768 queries per call, so tiles
and windows that put several query tiles in one group (larger tiles, windows clamped at the
borders) run closer to dense SDPA's speed per kept pair.
"""
from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from .window import Grid, SparseWindow, build_groups


@lru_cache(maxsize=32)
def _groups_on(grid: Grid, spec: SparseWindow, device: torch.device) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    return tuple((q_idx.to(device), k_idx.to(device)) for q_idx, k_idx in build_groups(grid, spec))


def gather_sparse3d(
    q: torch.Tensor,  # [B, L, H, D]
    k: torch.Tensor,  # [B, L, H, D]
    v: torch.Tensor,  # [B, L, H, D]
    grid: Grid,
    spec: SparseWindow,
) -> torch.Tensor:  # [B, L, H, D]
    out = torch.empty_like(q)  # [B, L, H, D]
    for q_idx, k_idx in _groups_on(tuple(grid), spec, q.device):
        # Gathering whole tokens (all heads: one long row each) is several times faster than
        # gathering per head, and SDPA takes the [B, H, L, D] views of them without a copy.
        q_g, k_g, v_g = q.index_select(1, q_idx), k.index_select(1, k_idx), v.index_select(1, k_idx)
        block = F.scaled_dot_product_attention(q_g.transpose(1, 2), k_g.transpose(1, 2), v_g.transpose(1, 2))
        out.index_copy_(1, q_idx, block.transpose(1, 2))  # block: [B, H, Lq_group, D]
    return out
