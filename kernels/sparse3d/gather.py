"""Block-sparse 3D attention in plain torch: really skips the masked key tiles (any device, fast on CPU).

Query tiles with the same window share one key set; for each such group the query and key
tokens are gathered and fed to one dense SDPA call, so the work is proportional to the kept
(query, key) pairs. The layout is switched to head-major once per call so that every gather
produces the contiguous `[B, H, L, D]` blocks SDPA runs fastest on.
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
    q_h, k_h, v_h = (x.transpose(1, 2).contiguous() for x in (q, k, v))  # [B, H, L, D]
    out = torch.empty_like(q_h)  # [B, H, L, D]
    for q_idx, k_idx in _groups_on(tuple(grid), spec, q.device):
        block = F.scaled_dot_product_attention(
            q_h.index_select(2, q_idx), k_h.index_select(2, k_idx), v_h.index_select(2, k_idx)
        )  # [B, H, Lq_group, D]
        out.index_copy_(2, q_idx, block)
    return out.transpose(1, 2)
