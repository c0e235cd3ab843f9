"""LATENT sockets hold raw VAE latents (as native ComfyUI); the core samples normalised ones. Written out here
from the published statistics so node tests compare against the core without reusing nodes/latent_space.py."""
from __future__ import annotations

import torch

from kinema.core.vae.config import PUBLISHED_LATENT_STATS


def _stats(latents: torch.Tensor, stats=None):
    mean, std = stats or PUBLISHED_LATENT_STATS[latents.shape[1]]
    return torch.tensor(mean).view(1, -1, 1, 1, 1), torch.tensor(std).view(1, -1, 1, 1, 1)


def to_raw(latents: torch.Tensor, stats=None) -> torch.Tensor:
    """Normalised [B, C, T, H, W] -> raw (stats: (mean, std) of a VAE; default the published ones)."""
    mean, std = _stats(latents, stats)
    return latents * std + mean


def to_normalised(raw: torch.Tensor, stats=None) -> torch.Tensor:
    mean, std = _stats(raw, stats)
    return (raw - mean) / std
