"""Building blocks shared by the Wan 2.1 and 2.2 VAEs.

Module and parameter names follow the official Wan code (`residual.2.weight`, `resample.1`,
`time_conv`, `to_qkv` ...) so official and ComfyUI state dicts load without renaming. Every
block that mixes frames in time takes the stream's `CausalCache`.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...kernels.attention import attention
from .cache import CausalCache, last_frames

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def frames_as_batch(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, H, W] -> [B*T, C, H, W] for per-frame 2-D ops."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def batch_as_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """[B*T, C, H, W] -> [B, C, T, H, W]."""
    bt, c, h, w = x.shape
    return x.reshape(batch, bt // batch, c, h, w).transpose(1, 2)


class CausalConv3d(nn.Conv3d):
    """Conv3d padded only on the past side in time; the past comes from the cache when there is one."""

    def __init__(self, in_dim: int, out_dim: int, kernel, stride=1, padding=0):
        super().__init__(in_dim, out_dim, kernel, stride=stride, padding=0)
        pad_t, pad_h, pad_w = (padding,) * 3 if isinstance(padding, int) else padding
        self.spatial_pad = (pad_w, pad_w, pad_h, pad_h)
        # A centred kernel of half-width p becomes causal by seeing 2p past frames instead.
        self.history = 2 * pad_t

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        past = None
        if self.history and cache is not None:
            past = cache.past(self)
            cache.keep(self, last_frames(past, x, self.history))
        if past is not None:
            x = torch.cat([past.to(x.device), x], dim=2)
        zeros_in_front = self.history - (0 if past is None else past.shape[2])
        x = F.pad(x, (*self.spatial_pad, zeros_in_front, 0))
        return super().forward(x)


class RMSNorm(nn.Module):
    """x / ||x||_channels * sqrt(C) * gamma (Wan's RMS_norm, no bias)."""

    def __init__(self, dim: int, spatial_dims: int = 3):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim, *([1] * spatial_dims)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The channel norm overflows/underflows in 16-bit, so it is taken in fp32.
        unit = F.normalize(x.float() if x.dtype in _LOW_PRECISION else x, dim=1).to(x.dtype)
        return unit * self.scale * self.gamma


class ResidualBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.residual = nn.Sequential(
            RMSNorm(in_dim),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3, padding=1),
            RMSNorm(out_dim),
            nn.SiLU(),
            nn.Identity(),  # dropout in training; kept so the official indices 3 and 6 hold
            CausalConv3d(out_dim, out_dim, 3, padding=1),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        h = self.shortcut(x)
        for layer in self.residual:
            x = layer(x, cache) if isinstance(layer, CausalConv3d) else layer(x)
        return x + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over the positions of each frame (frames never attend to each other)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = RMSNorm(dim, spatial_dims=2)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor, cache: CausalCache | None = None) -> torch.Tensor:
        identity = x
        b, c, t, h, w = x.shape
        frames = self.norm(frames_as_batch(x))  # [B*T, C, H, W]
        qkv = self.to_qkv(frames).flatten(2).transpose(1, 2)  # [B*T, H*W, 3C]
        q, k, v = (part.unsqueeze(2) for part in qkv.chunk(3, dim=-1))  # [B*T, H*W, 1, C]
        out = attention(q, k, v).squeeze(2)  # [B*T, H*W, C]
        out = self.proj(out.transpose(1, 2).reshape(b * t, c, h, w))
        return batch_as_frames(out, b) + identity


class Upsample2x(nn.Module):
    """Nearest-exact x2 in H and W, computed in fp32 like the reference (16-bit nearest is not exact on every device)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.float(), scale_factor=2.0, mode="nearest-exact").to(x.dtype)


class Resample(nn.Module):
    """Spatial x2 up/down sampling, optionally with x2 in time ("3d" modes)."""

    MODES = ("upsample2d", "upsample3d", "downsample2d", "downsample3d")

    def __init__(self, dim: int, mode: str, out_dim: int | None = None):
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"unknown resample mode {mode!r}; expected one of {self.MODES}")
        self.mode = mode
        if mode.startswith("up"):
            self.resample = nn.Sequential(Upsample2x(), nn.Conv2d(dim, out_dim or dim, 3, padding=1))
        else:
            # Pad right/bottom only, so a stride-2 conv halves even sizes exactly.
            self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        if mode == "upsample3d":
            self.time_conv = CausalConv3d(dim, dim * 2, (3, 1, 1), padding=(1, 0, 0))
        elif mode == "downsample3d":
            self.time_conv = CausalConv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1))

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        b = x.shape[0]
        if self.mode == "upsample3d":
            x = self._double_frames(x, cache)
        x = batch_as_frames(self.resample(frames_as_batch(x)), b)
        if self.mode == "downsample3d":
            x = self._halve_frames(x, cache)
        return x

    def _double_frames(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        # The first latent frame stands for one video frame, so it is not doubled; the time
        # conv's stream starts with the second chunk (its past then is zeros).
        if cache.first_chunk:
            return x
        b, c, t, h, w = x.shape
        pairs = self.time_conv(x, cache).reshape(b, 2, c, t, h, w)
        return pairs.permute(0, 2, 3, 1, 4, 5).reshape(b, c, t * 2, h, w)  # frame i -> 2i, 2i+1

    def _halve_frames(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        # The first chunk (one frame) passes through; later chunks see the last frame before
        # them, so 4 frames + 1 past -> 2 frames with the stride-2, 3-tap time conv.
        past = cache.past(self)
        cache.keep(self, x[:, :, -1:])
        if cache.first_chunk:
            return x
        return self.time_conv(torch.cat([past.to(x.device), x], dim=2))


def run_layers(layers: nn.Sequential, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
    """Run a Sequential whose causal members take the cache and whose pointwise members do not."""
    for layer in layers:
        x = layer(x, cache) if getattr(layer, "takes_cache", False) else layer(x)
    return x


# Layers whose forward is (x, cache).
for _cls in (CausalConv3d, ResidualBlock, AttentionBlock, Resample):
    _cls.takes_cache = True
