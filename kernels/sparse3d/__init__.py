"""Block-sparse spatio-temporal attention (sliding-tile windows over the latent grid + global frames).

`sparse3d_attention(q, k, v, grid=..., window=SparseWindow(...))` runs one of two paths with the
same numerics: "gather" (plain torch, skips masked tiles on any device; the CPU path) and "flex"
(FlexAttention block masks; the CUDA path). It is registered as the attention backend "sparse3d",
so callers can write `attention(q, k, v, backend="sparse3d", grid=(F, H, W), window=...)`.
`reference.dense_masked_sparse3d` is the dense masked SDPA that tests compare both paths to.
`SparseSchedule` says which DiT layers / steps use it (dense early steps, sparse later).
"""
from __future__ import annotations

from typing import Optional

import torch

from ..attention import AttentionBackend, AttentionCall, register_backend
from .gather import gather_sparse3d
from .schedule import SparseSchedule
from .window import Grid, SparseWindow, check_grid, density

PATHS = ("auto", "gather", "flex")


def sparse3d_attention(
    q: torch.Tensor,  # [B, L, H, D], tokens in row-major (t, h, w) order of `grid`
    k: torch.Tensor,  # [B, L, H, D]
    v: torch.Tensor,  # [B, L, H, D]
    *,
    grid: Grid,
    window: SparseWindow = SparseWindow(),
    path: str = "auto",
) -> torch.Tensor:  # [B, L, H, D]
    """Self-attention where each query tile sees the key tiles of its 3D window (+ global frames)."""
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"sparse3d is self-attention over one grid: q has {q.shape[1]} tokens, k has {k.shape[1]}")
    check_grid(tuple(grid), q.shape[1])
    if not isinstance(window, SparseWindow):
        raise TypeError(f"window must be a kinema SparseWindow, got {type(window).__name__}")
    if path not in PATHS:
        raise ValueError(f"unknown sparse3d path {path!r}; use one of {', '.join(PATHS)}")
    if path == "flex" or (path == "auto" and q.device.type == "cuda"):
        from .flex import flex_sparse3d  # lazy: FlexAttention is only needed on the GPU path

        return flex_sparse3d(q, k, v, tuple(grid), window, compiled=q.device.type == "cuda")
    return gather_sparse3d(q, k, v, tuple(grid), window)


_OPTIONS = frozenset({"grid", "window", "path"})


def _sparse3d_refuses(call: AttentionCall) -> Optional[str]:
    if call.has_mask:
        return "sparse3d builds its own mask from grid= and window=; do not pass mask="
    if "grid" not in call.options:
        return "sparse3d needs grid=(frames, height, width) of the token grid"
    unknown = call.options - _OPTIONS
    if unknown:
        return f"sparse3d takes only {sorted(_OPTIONS)}, got {sorted(unknown)}"
    return None


def _run_sparse3d(q, k, v, *, mask=None, **options):
    return sparse3d_attention(q, k, v, **options)


register_backend(AttentionBackend("sparse3d", priority=50, run=_run_sparse3d, refuses=_sparse3d_refuses))

__all__ = ["SparseWindow", "SparseSchedule", "sparse3d_attention", "density", "PATHS"]
