"""Ulysses self-attention: all-to-all from "my tokens, all heads" to "all tokens, my heads", attention on
the whole sequence with any backend (sparse3d too: each rank sees the full grid for its heads), and
all-to-all back. Uneven token slices travel as split sizes: no padding, no mask."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist

from ...kernels.attention import attention


def sequence_to_heads(x: torch.Tensor, sizes: Sequence[int], group) -> torch.Tensor:
    """[B, L_r, H, D] (this rank's tokens) -> [B, L, H/P, D] (every token, this rank's heads)."""
    batch, tokens, heads, dim = x.shape
    ranks = len(sizes)
    # [P, L_r, B, H/P, D]: block p (heads p*H/P...) goes to rank p
    send = x.reshape(batch, tokens, ranks, heads // ranks, dim).permute(2, 1, 0, 3, 4).contiguous()
    received = x.new_empty(sum(sizes), batch, heads // ranks, dim)  # [L, B, H/P, D], rank i's tokens in order
    dist.all_to_all_single(received, send.flatten(0, 1), output_split_sizes=list(sizes),
                           input_split_sizes=[tokens] * ranks, group=group)
    return received.permute(1, 0, 2, 3)


def heads_to_sequence(x: torch.Tensor, sizes: Sequence[int], group) -> torch.Tensor:
    """[B, L, H/P, D] -> [B, L_r, H, D]: the inverse of `sequence_to_heads`."""
    batch, _, heads, dim = x.shape
    ranks, mine = len(sizes), sizes[dist.get_rank(group)]
    send = x.permute(1, 0, 2, 3).contiguous()  # [L, B, H/P, D], rank i's tokens in order
    received = x.new_empty(ranks * mine, batch, heads, dim)  # [P * L_r, B, H/P, D], head block p from rank p
    dist.all_to_all_single(received, send, output_split_sizes=[mine] * ranks, input_split_sizes=list(sizes),
                           group=group)
    return received.reshape(ranks, mine, batch, heads, dim).permute(2, 1, 0, 3, 4).reshape(
        batch, mine, ranks * heads, dim)


def ulysses_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sizes: Sequence[int], group,
                      backend: str, options: dict) -> torch.Tensor:  # [B, L_r, H, D] each -> [B, L_r, H, D]
    q, k, v = (sequence_to_heads(x, sizes, group) for x in (q, k, v))  # [B, L, H/P, D]
    return heads_to_sequence(attention(q, k, v, backend=backend, **options), sizes, group)
