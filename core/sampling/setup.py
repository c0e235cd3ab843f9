"""What every sampling loop (one clip, long video, the sampler node) sets up the same way before
its first step: the start shape, the device, the expert per step, the start-image conditioning."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .conditioning import ImageConditioning, first_frame_video, fit_image, i2v_conditioning, ti2v_conditioning
from .experts import default_boundary, uses_high_noise_expert
from .settings import SamplerSettings


def config_field(model, name: str):
    """`model.config.<name>`, or None for a model without that field (tests' stand-ins)."""
    return getattr(getattr(model, "config", None), name, None)


def default_device(dit, latents: Optional[torch.Tensor]) -> torch.device:
    """Where the given latents are, else where the DiT's weights are, else the CPU."""
    if latents is not None:
        return latents.device
    parameters = getattr(dit, "parameters", None)
    if callable(parameters):
        for p in parameters():
            return p.device
    return torch.device("cpu")


def to_device(context, device: torch.device):
    """Encoded text, a [B, L, D] tensor or a list of [L_i, D], on `device` (None stays None)."""
    if context is None:
        return None
    if isinstance(context, torch.Tensor):
        return context.to(device)
    return [c.to(device) for c in context]


def start_shape(shape: Optional[Sequence[int]], latents: Optional[torch.Tensor], settings: SamplerSettings
                ) -> tuple[int, ...]:
    """[B, C, T, H, W] of the run, from exactly one of `shape` (from noise) or `latents` (refine)."""
    if (shape is None) == (latents is None):
        raise ValueError("give exactly one of shape= (sample from noise) or latents= (start from these latents).")
    if settings.partial and latents is None:
        raise ValueError("denoise < 1, start_sigma and start_step refine existing latents; pass latents=.")
    shape = tuple(int(n) for n in (shape if latents is None else latents.shape))
    if len(shape) != 5:
        raise ValueError(f"shape/latents must be [B, C, T, H, W] (5 dimensions), got {shape}.")
    return shape


def expert_per_step(dit, dit_low_noise, settings: SamplerSettings, timesteps: torch.Tensor) -> list:
    """(model, cfg scale) for each step: Wan2.2's high-noise expert above the boundary, the low-noise one below."""
    if dit_low_noise is None:
        return [(dit, settings.cfg)] * len(timesteps)
    boundary = settings.boundary if settings.boundary is not None else default_boundary(
        getattr(dit, "config", None))
    low_cfg = settings.cfg if settings.cfg_low_noise is None else settings.cfg_low_noise
    return [(dit, settings.cfg) if high else (dit_low_noise, low_cfg)
            for high in uses_high_noise_expert(timesteps, boundary)]


def check_image_conditioning(image: Optional[ImageConditioning], shape: tuple) -> None:
    if image is None:
        return
    b, _, t, h, w = shape
    if image.y is not None and (image.y.shape[0] != b or tuple(image.y.shape[2:]) != (t, h, w)):
        raise ValueError(f"image conditioning y has shape {tuple(image.y.shape)} but the latents are {shape}; "
                         "build it for the same batch, frames and size.")
    if image.known_latent is not None and tuple(image.known_latent.shape) != shape:
        raise ValueError(f"known_latent has shape {tuple(image.known_latent.shape)} but the latents are {shape}; "
                         "build it for the same batch, channels, frames and size.")


def image_conditioning(dit, vae, start_image: Optional[torch.Tensor], shape: Sequence[int], frames: int,
                       height: int, width: int, device: torch.device) -> Optional[ImageConditioning]:
    """The start image's conditioning for latents of `shape` [B, C, T, h, w] (a video of `frames`
    frames of height x width pixels), or None without one.

    `start_image`: [3, H, W] or [1, 3, H, W] in [-1, 1], any size (cover-resized and centre-cropped
    to the video). I2V models (in_dim > out_dim) get the image's latents beside the noise and
    refuse to run without one; Wan2.2 TI2V-5B (48 channels) gets it as a known first latent frame.
    """
    batch, channels, latent_frames = shape[:3]
    in_dim = config_field(dit, "in_dim")
    concat_i2v = in_dim is not None and in_dim > channels
    if start_image is None:
        if concat_i2v:
            raise ValueError(f"this is an image-to-video model (in_dim {in_dim} > out_dim {channels}): "
                             "pass start_image= and vae=.")
        return None
    if not concat_i2v and channels != 48:
        raise ValueError("this text-to-video model does not take a start image; use an I2V model or "
                         "Wan2.2 TI2V-5B, or drop start_image.")
    if vae is None:
        raise ValueError("start_image needs the VAE to encode it: pass vae=.")
    picture = fit_image(start_image, height, width).to(device)  # [1, 3, H, W]
    if concat_i2v:
        encoded = vae.encode(first_frame_video(picture, frames))  # [1, C, T, h, w]
        return i2v_conditioning(encoded.expand(batch, -1, -1, -1, -1), frames)
    encoded = vae.encode(picture[:, :, None])  # [1, 48, 1, h, w]
    return ti2v_conditioning(encoded.expand(batch, -1, -1, -1, -1), latent_frames)
