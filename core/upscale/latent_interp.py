"""Fast latent upscaling: resize each latent frame directly (no decode), sizes kept DiT-friendly."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..sampling.shapes import PATCH  # the DiT folds PATCH x PATCH latent positions into a token: sides stay even

SCALES = (1.5, 2.0)
MODES = ("bicubic", "bilinear", "nearest-exact")


def upscaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Latent (height, width) x scale, rounded to even (e.g. 90x160 x1.5 -> 136x240, 1088x1920 px)."""
    if not isinstance(scale, (int, float)) or scale <= 1:
        raise ValueError(f"upscale factor must be a number > 1, got {scale!r}; use 1.5 or 2.")

    def side(n: int) -> int:
        return max(PATCH, math.floor(n * scale / PATCH + 0.5) * PATCH)  # halves round up

    return side(height), side(width)


def check_latents(latents: torch.Tensor) -> None:
    if not torch.is_tensor(latents) or latents.dim() != 5:
        got = tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__
        raise ValueError(f"expected a latent video [B, C, T, H, W], got {got}; pass LATENT['samples'] of a "
                         "video model.")


def interpolate_latents(latents: torch.Tensor, scale: float, mode: str = "bicubic",
                        chunk_frames: int = 16) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C, T, H', W'] frame by frame (`chunk_frames` at a time, so temporaries stay small)."""
    check_latents(latents)
    if mode not in MODES:
        raise ValueError(f"unknown latent resize mode {mode!r}; choose one of {', '.join(MODES)}.")
    b, c, t, h, w = latents.shape
    size = upscaled_size(h, w, scale)
    out = latents.new_empty(b, c, t, *size, dtype=torch.float32)
    for start in range(0, t, chunk_frames):
        chunk = latents[:, :, start:start + chunk_frames].float()  # [B, C, n, H, W]
        n = chunk.shape[2]
        frames = chunk.permute(0, 2, 1, 3, 4).reshape(b * n, c, h, w)  # [B*n, C, H, W]
        big = F.interpolate(frames, size=size, mode=mode, **({} if mode.startswith("nearest") else
                                                              {"align_corners": False}))
        out[:, :, start:start + n] = big.reshape(b, n, c, *size).permute(0, 2, 1, 3, 4)
    return out
