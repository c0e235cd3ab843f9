"""The Wan VAE network (encoder, decoder and the 1x1x1 convs between them) for either version."""
from __future__ import annotations

import torch
import torch.nn as nn

from . import wan21, wan22
from .blocks import AttentionBlock, CausalConv3d, ResidualBlock, RMSNorm, run_layers
from .cache import CausalCache
from .config import VAEConfig


def _middle(dim: int) -> nn.Sequential:
    return nn.Sequential(ResidualBlock(dim, dim), AttentionBlock(dim), ResidualBlock(dim, dim))


def _head(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(RMSNorm(in_dim), nn.SiLU(), CausalConv3d(in_dim, out_dim, 3, padding=1))


class Encoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        width = cfg.base_dim * cfg.dim_mult[-1]
        self.conv1 = CausalConv3d(cfg.image_channels, cfg.base_dim, 3, padding=1)
        self.downsamples = (wan22 if cfg.version == "2.2" else wan21).encoder_stages(cfg)
        self.middle = _middle(width)
        self.head = _head(width, cfg.z_dim * 2)

    def forward(self, x: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(x, cache)
        x = run_layers(self.downsamples, x, cache)
        x = run_layers(self.middle, x, cache)
        return run_layers(self.head, x, cache)


class Decoder3d(nn.Module):
    def __init__(self, cfg: VAEConfig):
        super().__init__()
        width = cfg.decoder_base_dim * cfg.dim_mult[-1]
        self.conv1 = CausalConv3d(cfg.z_dim, width, 3, padding=1)
        self.middle = _middle(width)
        self.upsamples = (wan22 if cfg.version == "2.2" else wan21).decoder_stages(cfg)
        self.head = _head(cfg.decoder_base_dim * cfg.dim_mult[0], cfg.image_channels)

    def forward(self, z: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        x = self.conv1(z, cache)
        x = run_layers(self.middle, x, cache)
        x = run_layers(self.upsamples, x, cache)
        return run_layers(self.head, x, cache)


class WanVAENetwork(nn.Module):
    """Parameters under the official Wan names; one chunk of one stream per call."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder3d(cfg)
        self.conv1 = CausalConv3d(cfg.z_dim * 2, cfg.z_dim * 2, 1)  # -> mean || log-variance
        self.conv2 = CausalConv3d(cfg.z_dim, cfg.z_dim, 1)  # before the decoder
        self.decoder = Decoder3d(cfg)

    def encode_chunk(self, video: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """Pixels [B, 3, t, H, W] of one chunk -> raw (unnormalised) latent mean [B, z, t', H/s, W/s]."""
        x = wan22.patchify(video, self.config.patch_size)
        moments = self.conv1(self.encoder(x, cache))
        cache.end_chunk()
        return moments[:, : self.config.z_dim]

    def decode_chunk(self, z: torch.Tensor, cache: CausalCache) -> torch.Tensor:
        """Raw latent [B, z, t, h, w] of one chunk -> pixels [B, 3, t', h*s, w*s] (not clamped)."""
        x = self.decoder(self.conv2(z), cache)
        cache.end_chunk()
        return wan22.unpatchify(x, self.config.patch_size)
