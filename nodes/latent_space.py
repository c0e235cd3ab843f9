"""LATENT between nodes holds raw VAE latents, as in native ComfyUI; Kinema's core works on normalised ones.

Native VAEEncode/VAEDecode read and write the VAE's raw output z, and a native Wan model normalises
it inside the sampler with its latent format, (z - mean) / std. Kinema's core (and the Python API)
keeps its own convention: the VAE returns normalised latents and the DiT samples in that space.
The nodes convert at the socket, so native and Kinema nodes mix on one LATENT wire:

- the sampler and the learned upsampler use the model's published statistics, picked by the channel
  count (Wan2.1's 16, Wan2.2's 48), as a native model's latent format does;
- the VAE nodes use their own VAE's statistics, so decoding a raw latent is the VAE's decode of z,
  whatever statistics its file declared.
"""
from __future__ import annotations

import torch

from ..core.vae.config import PUBLISHED_LATENT_STATS


def _view(values, latents: torch.Tensor) -> torch.Tensor:
    shape = (1, len(values)) + (1,) * (latents.dim() - 2)  # broadcast over [B, C, T, H, W]
    return torch.tensor(values, dtype=torch.float32, device=latents.device).view(shape)


def _published(latents: torch.Tensor, node: str) -> tuple[torch.Tensor, torch.Tensor]:
    channels = latents.shape[1]
    if channels not in PUBLISHED_LATENT_STATS:
        known = " or ".join(str(c) for c in PUBLISHED_LATENT_STATS)
        raise ValueError(f"{node}: the LATENT has {channels} channels but Wan latents have {known} (Wan2.1 / "
                         f"Wan2.2 VAE); connect a latent made by a Wan VAE (KinemaEmptyLatent, VAEEncode).")
    mean, std = PUBLISHED_LATENT_STATS[channels]
    return _view(mean, latents), _view(std, latents)


def _own(vae_model, latents: torch.Tensor, node: str) -> tuple[torch.Tensor, torch.Tensor]:
    config = vae_model.config
    if latents.shape[1] != config.z_dim:
        raise ValueError(f"{node}: the LATENT has {latents.shape[1]} channels but this VAE's latents have "
                         f"{config.z_dim}; connect the VAE of the model that made the latent.")
    return _view(config.latents_mean, latents), _view(config.latents_std, latents)


def raw_to_model(raw: torch.Tensor, node: str) -> torch.Tensor:
    """Raw VAE latents [B, C, T, H, W] -> the normalised latents the DiT samples in (float32)."""
    mean, std = _published(raw, node)
    return (raw.float() - mean) / std


def model_to_raw(latents: torch.Tensor, node: str) -> torch.Tensor:
    """The DiT's normalised latents [B, C, T, H, W] -> raw VAE latents for the LATENT socket (float32)."""
    mean, std = _published(latents, node)
    return latents.float() * std + mean


def raw_to_vae(vae_model, raw: torch.Tensor, node: str) -> torch.Tensor:
    """Raw latents -> the normalised latents `core.vae.WanVAE` decodes (its own statistics)."""
    mean, std = _own(vae_model, raw, node)
    return (raw.float() - mean) / std


def vae_to_raw(vae_model, latents: torch.Tensor, node: str) -> torch.Tensor:
    """`core.vae.WanVAE.encode`'s normalised latents -> raw latents for the LATENT socket."""
    mean, std = _own(vae_model, latents, node)
    return latents.float() * std + mean
