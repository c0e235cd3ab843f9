"""Our block-sparse 3D attention against dense SDPA at growing token counts (same q/k/v, same process).

Heads and head size are Wan2.1-1.3B's (12 x 128). Each case keeps roughly 30% of the key tiles
(the density column is exact); the reference is the registry's dense "sdpa" backend on the same
`[B, L, H, D]` inputs. The first case is also checked against the masked dense reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from kinema.kernels import SparseWindow, attention, sparse3d_attention
from kinema.kernels.sparse3d import density
from kinema.kernels.sparse3d.reference import dense_masked_sparse3d

from .timing import Row, interleaved_medians

HEADS, HEAD_DIM = 12, 128


@dataclass(frozen=True)
class Case:
    grid: tuple[int, int, int]  # tokens (frames, height, width) after patchify
    window: SparseWindow
    label: str = ""


# Tiles of 4x8x8 put >= 1024 queries in each SDPA call, where the CPU kernel runs at full speed;
# the 2x8x8 row shows the cost of finer tiles (512-query calls) at the same density.
CPU_QUICK = [
    Case((4, 32, 32), SparseWindow(tile=(2, 8, 8), window=(1, 3, 3))),
    Case((8, 32, 32), SparseWindow(tile=(4, 8, 8), window=(1, 3, 3))),
]
CPU_FULL = CPU_QUICK + [
    Case((8, 32, 32), SparseWindow(tile=(2, 8, 8), window=(2, 3, 3)), "finer tiles"),
    Case((8, 32, 32), SparseWindow(tile=(4, 8, 8), window=(1, 3, 3), global_frames=1), "+ first frame global"),
    Case((16, 32, 32), SparseWindow(tile=(4, 8, 8), window=(2, 3, 3))),
]
# Wan2.1 latent grids after the 1x2x2 patch: 480p 81 frames = 21x30x52, 720p = 21x45x80. Tiles of
# 2x8x8 = 128 tokens match FlexAttention's 128-token blocks, so kept blocks are whole tiles.
GPU = [
    Case((21, 30, 52), SparseWindow(tile=(2, 8, 8), window=(5, 3, 5)), "480p"),
    Case((21, 45, 80), SparseWindow(tile=(2, 8, 8), window=(7, 4, 6)), "720p"),
    Case((21, 45, 80), SparseWindow(tile=(2, 8, 8), window=(7, 4, 6), global_frames=1), "720p + first frame global"),
]
# The acceptance row: >= 8k tokens with ~30% of key tiles kept.
SUMMARY_MIN_TOKENS = 8192


def run(quick: bool, device: torch.device, dtype: torch.dtype, rounds: int) -> tuple[list[Row], dict[str, float]]:
    cases = GPU if device.type == "cuda" else (CPU_QUICK if quick else CPU_FULL)
    rows, speedup = [], None
    for i, case in enumerate(cases):
        f, h, w = case.grid
        q, k, v = (torch.randn(1, f * h * w, HEADS, HEAD_DIM, device=device, dtype=dtype) for _ in range(3))
        sparse = lambda: sparse3d_attention(q, k, v, grid=case.grid, window=case.window)  # noqa: E731
        dense = lambda: attention(q, k, v, backend="sdpa")  # noqa: E731
        note = f"density {density(case.grid, case.window):.2f} {case.label}".rstrip()
        if i == 0:
            error = (sparse() - dense_masked_sparse3d(q, k, v, case.grid, case.window)).abs().max().item()
            note += f", max|sparse-masked dense| {error:.1e}"
        medians = interleaved_medians({"sparse": sparse, "dense": dense}, device, rounds)
        tw = case.window
        name = f"L={f * h * w} grid {f}x{h}x{w} tile {'x'.join(map(str, tw.tile))} win {'x'.join(map(str, tw.window))}"
        rows.append(Row("attention", name, medians["sparse"], medians["dense"], note))
        if speedup is None and f * h * w >= SUMMARY_MIN_TOKENS and not tw.global_frames:
            speedup = medians["dense"] / medians["sparse"]
    return rows, ({"sparse_speedup": speedup} if speedup is not None else {})
