"""Wan2.1 VAE stages: flat lists of residual blocks and resamplers (official `vae.py` layout)."""
from __future__ import annotations

import torch.nn as nn

from .blocks import Resample, ResidualBlock
from .config import VAEConfig


def encoder_stages(cfg: VAEConfig) -> nn.Sequential:
    """`encoder.downsamples`: per stage, num_res_blocks blocks then a 2x downsampler (not after the last)."""
    dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
    layers = []
    for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(cfg.num_res_blocks):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if i < len(cfg.dim_mult) - 1:
            layers.append(Resample(out_dim, "downsample3d" if cfg.temporal_downsample[i] else "downsample2d"))
    return nn.Sequential(*layers)


def decoder_stages(cfg: VAEConfig) -> nn.Sequential:
    """`decoder.upsamples`: per stage, num_res_blocks + 1 blocks then a 2x upsampler that halves the width."""
    dims = [cfg.decoder_base_dim * m for m in (cfg.dim_mult[-1], *reversed(cfg.dim_mult))]
    temporal_upsample = tuple(reversed(cfg.temporal_downsample))
    layers = []
    for i, (in_dim, out_dim) in enumerate(zip(dims[:-1], dims[1:])):
        if i > 0:
            in_dim //= 2  # the previous stage's upsampler halved the channels
        for _ in range(cfg.num_res_blocks + 1):
            layers.append(ResidualBlock(in_dim, out_dim))
            in_dim = out_dim
        if i < len(cfg.dim_mult) - 1:
            mode = "upsample3d" if temporal_upsample[i] else "upsample2d"
            layers.append(Resample(out_dim, mode, out_dim=out_dim // 2))
    return nn.Sequential(*layers)
