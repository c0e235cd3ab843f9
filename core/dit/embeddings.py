"""Inputs of the DiT: latent patches, timestep sinusoid, and CLIP image features."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import Linear
from .norms import LayerNorm32


class PatchEmbedding(nn.Module):
    """Conv3d with kernel = stride = patch size, holding its weight in any stored dtype."""

    def __init__(self, in_dim: int, dim: int, patch_size: tuple[int, int, int]):
        super().__init__()
        self.patch_size = patch_size
        self.weight = nn.Parameter(torch.empty(dim, in_dim, *patch_size))
        self.bias = nn.Parameter(torch.empty(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T, H, W] -> [B, L, dim]
        # A conv whose kernel equals its stride is a Linear over non-overlapping patches. Run as one,
        # it emits row-major [B, L, dim] directly: conv3d gives [B, dim, L], whose transpose would
        # leave the residual stream strided (every norm and residual update ~3x slower on CPU).
        batch, channels, frames, height, width = x.shape
        pt, ph, pw = self.patch_size
        patches = x.reshape(batch, channels, frames // pt, pt, height // ph, ph, width // pw, pw)
        patches = patches.permute(0, 2, 4, 6, 1, 3, 5, 7).flatten(4).flatten(1, 3)  # [B, L, C*pt*ph*pw]
        weight = self.weight.flatten(1)  # [dim, C*pt*ph*pw], the same (C, pt, ph, pw) order
        weight = weight if weight.dtype == x.dtype else weight.to(x.dtype)
        bias = self.bias if self.bias.dtype == x.dtype else self.bias.to(x.dtype)
        return F.linear(patches, weight, bias)  # [B, L, dim], tokens in (f, h, w) row-major order


def timestep_sinusoid(t: torch.Tensor, freq_dim: int) -> torch.Tensor:
    """`[cos(t w), sin(t w)]` with w_j = 10000^(-j/half), cos first; t `[N]` -> float32 `[N, freq_dim]`.

    Float64 like the official model; callers pass only the distinct timesteps (a handful of
    values), so this costs nothing even on GPUs with slow float64.
    """
    half = freq_dim // 2
    omega = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)  # [half]
    angles = t.to(torch.float64)[:, None] * omega[None, :]  # [N, half]
    return torch.cat([angles.cos(), angles.sin()], dim=1).float()


class ImageEmbedding(nn.Module):
    """CLIP features -> DiT width (`img_emb`): LN, Linear, GELU (erf), Linear, LN; FLF2V adds a position table."""

    def __init__(self, image_dim: int, dim: int, image_tokens: Optional[int]):
        super().__init__()
        # torch's default LayerNorm eps (1e-5) here, unlike the DiT's 1e-6.
        self.proj = nn.Sequential(
            LayerNorm32(image_dim, 1e-5, affine=True),
            Linear(image_dim, image_dim),
            nn.GELU(),
            Linear(image_dim, dim),
            LayerNorm32(dim, 1e-5, affine=True),
        )
        self.emb_pos = nn.Parameter(torch.empty(1, image_tokens, image_dim)) if image_tokens else None

    def forward(self, clip_fea: torch.Tensor, compute_dtype: torch.dtype) -> torch.Tensor:
        x = clip_fea.float()  # [B, N, image_dim]
        if self.emb_pos is not None:
            x = x + self.emb_pos.float()
        x = self.proj[0](x).to(compute_dtype)
        x = self.proj[3](self.proj[2](self.proj[1](x)))
        return self.proj[4](x).to(compute_dtype)  # [B, N, dim]
