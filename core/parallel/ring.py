"""Ring self-attention: every rank keeps its queries and passes its keys and values round the ring of the
`sequence` axis; each block it meets adds a partial attention, merged by log-sum-exp
(kernels.attention_lse). Works for any head count and across machines; the next block's transfer
overlaps the current block's attention."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist

from ...kernels.attention_lse import LSE_BACKENDS, attention_lse, merge_partial


def check_ring_backend(backend: str) -> None:
    """Ring attention merges partial results, which needs a backend that returns the log-sum-exp."""
    if backend not in LSE_BACKENDS:
        raise ValueError(
            f"attention backend {backend!r} cannot run ring-parallel: ring attention merges partial results by "
            f"their log-sum-exp, which {backend!r} does not return; choose one of "
            f"{', '.join(n for n in LSE_BACKENDS if n != 'reference')} for the DiT, or use Ulysses "
            "(any backend) when the head count divides the ranks")


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sizes: Sequence[int], group,
                   backend: str, options: dict) -> torch.Tensor:  # [B, L_r, H, D] each -> [B, L_r, H, D]
    if options:
        raise ValueError(f"ring-parallel self-attention runs dense attention; the per-layer options "
                         f"{sorted(options)} (e.g. a sparse3d schedule) need Ulysses")
    check_ring_backend(backend)
    ranks, rank = len(sizes), dist.get_rank(group)
    after, before = (dist.get_global_rank(group, (rank + step) % ranks) for step in (1, -1))
    held = torch.stack([k, v]).contiguous()  # [2, B, L_i, H, D], the block of rank (rank - step) at step `step`
    out = lse = None
    for step in range(ranks):
        pending = []
        if step + 1 < ranks:
            arriving = (rank - step - 1) % ranks
            incoming = held.new_empty(2, held.shape[1], sizes[arriving], *held.shape[3:])
            pending = dist.batch_isend_irecv([dist.P2POp(dist.isend, held, after, group),
                                              dist.P2POp(dist.irecv, incoming, before, group)])
        part, part_lse = attention_lse(q, held[0], held[1], backend=backend)
        out, lse = (part.float(), part_lse) if out is None else merge_partial(out, lse, part, part_lse)
        for request in pending:
            request.wait()
        if pending:
            held = incoming
    return out.to(q.dtype)
