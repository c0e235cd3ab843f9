"""Wan2.2 VAE stages: residual stages with parameter-free shortcuts, and the 2x2 pixel patchify."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .blocks import Resample, ResidualBlock, run_layers
from .cache import CausalCache
from .config import VAEConfig


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, C*p*p, T, H/p, W/p]; channel index c*p*p + col_offset*p + row_offset."""
    if p == 1:
        return x
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // p, p, w // p, p)  # [B, C, T, h, row, w, col]
    return x.permute(0, 1, 6, 4, 2, 3, 5).reshape(b, c * p * p, t, h // p, w // p)


def unpatchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """Inverse of `patchify`."""
    if p == 1:
        return x
    b, cpp, t, h, w = x.shape
    x = x.reshape(b, cpp // (p * p), p, p, t, h, w)  # [B, C, col, row, T, h, w]
    return x.permute(0, 1, 4, 5, 3, 6, 2).reshape(b, cpp // (p * p), t, h * p, w * p)


class AvgDown3D(nn.Module):
    """Shortcut that folds (time, row, col) offsets into channels and averages channel groups."""

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int):
        super().__init__()
        self.out_dim, self.factor_t, self.factor_s = out_dim, factor_t, factor_s
        self.group = in_dim * factor_t * factor_s**2 // out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ft, fs = self.factor_t, self.factor_s
        x = F.pad(x, (0, 0, 0, 0, (-x.shape[2]) % ft, 0))  # zero frames in front, to a multiple of ft
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // ft, ft, h // fs, fs, w // fs, fs)
        x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)  # [B, C, ft, fs, fs, t, h, w]
        return x.reshape(b, self.out_dim, self.group, t // ft, h // fs, w // fs).mean(dim=2)


class DupUp3D(nn.Module):
    """Shortcut that repeats channels and unfolds them into (time, row, col) offsets."""

    def __init__(self, in_dim: int, out_dim: int, factor_t: int, factor_s: int):
        super().__init__()
        self.out_dim, self.factor_t, self.factor_s = out_dim, factor_t, factor_s
        self.repeats = out_dim * factor_t * factor_s**2 // in_dim

    def forward(self, x: torch.Tensor, first_chunk: bool) -> torch.Tensor:
        ft, fs = self.factor_t, self.factor_s
        b, _, t, h, w = x.shape
        x = x.repeat_interleave(self.repeats, dim=1).reshape(b, self.out_dim, ft, fs, fs, t, h, w)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, self.out_dim, t * ft, h * fs, w * fs)
        # The first latent frame is one video frame, matching the main path's undoubled first chunk.
        return x[:, :, ft - 1 :] if first_chunk else x


class DownStage(nn.Module):
    """Encoder stage: residual blocks (+ downsampler) plus an AvgDown3D shortcut."""

    takes_cache = True

    def __init__(self, in_dim: int, out_dim: int, num_res_blocks: int, temporal: bool, down: bool):
        super().__init__()
        self.avg_shortcut = AvgDown3D(in_dim, out_dim, 2 if temporal else 1, 2 if down else 1)
        layers = [ResidualBlock(in_dim if j == 0 else out_dim, out_dim) for j in range(num_res_blocks)]
        if down:
            layers.append(Resample(out_dim, "downsample3d" if temporal else "downsample2d"))
        self.downsamples = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        return run_layers(self.downsamples, x, cache) + self.avg_shortcut(x)


class UpStage(nn.Module):
    """Decoder stage: residual blocks (+ upsampler) plus a DupUp3D shortcut when it upsamples."""

    takes_cache = True

    def __init__(self, in_dim: int, out_dim: int, num_res_blocks: int, temporal: bool, up: bool):
        super().__init__()
        self.avg_shortcut = DupUp3D(in_dim, out_dim, 2 if temporal else 1, 2) if up else None
        layers = [ResidualBlock(in_dim if j == 0 else out_dim, out_dim) for j in range(num_res_blocks + 1)]
        if up:
            layers.append(Resample(out_dim, "upsample3d" if temporal else "upsample2d", out_dim=out_dim))
        self.upsamples = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        main = run_layers(self.upsamples, x, cache)
        if self.avg_shortcut is None:
            return main
        return main + self.avg_shortcut(x, cache.first_chunk)


def encoder_stages(cfg: VAEConfig) -> nn.Sequential:
    dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
    last = len(cfg.dim_mult) - 1
    return nn.Sequential(*(
        DownStage(dims[i], dims[i + 1], cfg.num_res_blocks, i < last and cfg.temporal_downsample[i], i < last)
        for i in range(len(cfg.dim_mult))
    ))


def decoder_stages(cfg: VAEConfig) -> nn.Sequential:
    dims = [cfg.decoder_base_dim * m for m in (cfg.dim_mult[-1], *reversed(cfg.dim_mult))]
    temporal_upsample = tuple(reversed(cfg.temporal_downsample))
    last = len(cfg.dim_mult) - 1
    return nn.Sequential(*(
        UpStage(dims[i], dims[i + 1], cfg.num_res_blocks, i < last and temporal_upsample[i], i < last)
        for i in range(len(cfg.dim_mult))
    ))
