"""Attention that also returns the log-sum-exp of each query's scores (what ring attention merges).

`attention_lse(q, k, v, backend=...)` -> (out [B, Lq, H, D], lse [B, Lq, H] float32), where
lse = log(sum_j exp(q.k_j / sqrt(D))). Two partial results over disjoint key sets combine exactly:
    lse = logaddexp(lse_a, lse_b); out = out_a * exp(lse_a - lse) + out_b * exp(lse_b - lse)
(`merge_partial`). Backends are named like the plain attention backends they match, so a caller
asks for the LSE form of the backend it already uses; `reference` is the plain-torch one tests
compare the others to. No silent fallback: a backend that cannot run a call says why.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Callable, Optional

import torch

from .attention import AttentionUnavailable

LseResult = tuple[torch.Tensor, torch.Tensor]  # out [B, Lq, H, D] (q's dtype), lse [B, Lq, H] float32


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> LseResult:
    """Plain torch in float32: scores, their log-sum-exp, softmax-weighted values."""
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) / math.sqrt(q.shape[-1])  # [B, H, Lq, Lk]
    lse = torch.logsumexp(scores, dim=-1)  # [B, H, Lq]
    out = torch.einsum("bhqk,bkhd->bqhd", torch.exp(scores - lse[..., None]), v.float())
    return out.to(q.dtype), lse.transpose(1, 2)


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> LseResult:
    """PyTorch's own fused kernels, called through the aten ops that expose the log-sum-exp."""
    q, k, v = (x.transpose(1, 2).contiguous() for x in (q, k, v))  # [B, H, L, D]
    if q.device.type == "cpu":
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[:2]
    else:
        out, lse = torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, None, True)[:2]
    # The CUDA kernel pads lse's query axis to its block size.
    return out.transpose(1, 2), lse[:, :, : q.shape[2]].float().transpose(1, 2)


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> LseResult:
    from flash_attn import flash_attn_func  # lazy: optional dependency

    out, lse, _ = flash_attn_func(q, k, v, return_attn_probs=True)
    return out, lse[:, :, : q.shape[1]].float().transpose(1, 2)


def _sdpa_refuses(q: torch.Tensor) -> Optional[str]:
    if q.device.type not in ("cpu", "cuda"):
        return f"the log-sum-exp kernels run on CPU and CUDA, this call is on {q.device.type}"
    return None


def _flash_refuses(q: torch.Tensor) -> Optional[str]:
    if importlib.util.find_spec("flash_attn") is None:
        return "the flash-attn package is not installed (pip install flash-attn)"
    if q.device.type != "cuda" or q.dtype not in (torch.float16, torch.bfloat16):
        return "flash-attn runs on CUDA with fp16 or bf16 inputs only"
    return None


# name -> (run, refuses(q) -> reason or None)
LSE_BACKENDS: dict[str, tuple[Callable[..., LseResult], Callable[[torch.Tensor], Optional[str]]]] = {
    "reference": (_reference, lambda q: None),
    "sdpa": (_sdpa, _sdpa_refuses),
    "flash": (_flash, _flash_refuses),
}


def attention_lse(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, backend: str = "sdpa") -> LseResult:
    """q [B, Lq, H, D], k and v [B, Lk, H, D] -> (out [B, Lq, H, D], lse [B, Lq, H] float32); no mask."""
    if backend not in LSE_BACKENDS:
        raise AttentionUnavailable(
            f"attention backend {backend!r} cannot return the log-sum-exp that ring attention needs; "
            f"ones that can: {', '.join(sorted(LSE_BACKENDS))}")
    run, refuses = LSE_BACKENDS[backend]
    reason = refuses(q)
    if reason is not None:
        raise AttentionUnavailable(f"log-sum-exp attention backend {backend!r} cannot run this call: {reason}")
    return run(q, k, v)


def merge_partial(out: torch.Tensor, lse: torch.Tensor, part: torch.Tensor, part_lse: torch.Tensor) -> LseResult:
    """Attention over keys A (out, lse) and over disjoint keys B (part, part_lse) -> attention over A and B.
    out, part [B, L, H, D]; lse, part_lse [B, L, H] float32. Returns float32 out."""
    total = torch.logaddexp(lse, part_lse)  # [B, L, H]
    merged = out.float() * torch.exp(lse - total)[..., None] + part.float() * torch.exp(part_lse - total)[..., None]
    return merged, total
