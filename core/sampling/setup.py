"""What every sampling loop (one clip, long video, the sampler node) sets up the same way before
its first step: the start shape, the device, the expert per step, the start-image conditioning."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .conditioning import (ImageConditioning, first_frame_video, fit_image, i2v_conditioning, image_mode,
                           ti2v_conditioning)
from .experts import default_boundary, uses_high_noise_expert
from .settings import SamplerSettings
from .shapes import TEMPORAL_STRIDE, spatial_stride


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
    boundary = settings.boundary if settings.boundary is not None else default_boundary(dit)
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


def image_conditioning(dit, vae, start_image: Optional[torch.Tensor], shape: Sequence[int], device: torch.device,
                       long_video=None) -> Optional[ImageConditioning]:
    """The start image's conditioning for latents of `shape` [B, C, T, h, w], or None without one.

    `start_image`: [3, H, W] or [1, 3, H, W] in [-1, 1], any size (cover-resized and centre-cropped
    to the video). I2V models get the image's latents beside the noise and refuse to run without
    one; Wan2.2 TI2V-5B gets it as a known first latent frame. With `long_video` an I2V model's
    conditioning covers the first window only (later windows reuse its zero-image frames, so a long
    run never encodes minutes of grey frames).
    """
    batch, channels, latent_frames = shape[:3]
    mode = image_mode(dit, channels)
    if start_image is None:
        if mode == "concat":
            raise ValueError(f"this is an image-to-video model (in_dim {config_field(dit, 'in_dim')} > out_dim "
                             f"{channels}): pass start_image= and vae=.")
        return None
    if mode is None:
        raise ValueError("this is a text-to-video model and takes no start_image (it does not take a start image); "
                         "use an I2V model or Wan2.2 TI2V-5B, or disconnect start_image.")
    if vae is None:
        raise ValueError("start_image needs the VAE to encode it: pass vae=.")
    stride = spatial_stride(channels)
    picture = fit_image(start_image, shape[3] * stride, shape[4] * stride).to(device)  # [1, 3, H, W]
    if mode == "concat":
        if long_video is not None:
            latent_frames = min(latent_frames, long_video.window)
        pixel_frames = (latent_frames - 1) * TEMPORAL_STRIDE + 1
        encoded = vae.encode(first_frame_video(picture, pixel_frames))  # [1, C, T, h, w]
        return i2v_conditioning(encoded.expand(batch, -1, -1, -1, -1), pixel_frames)
    encoded = vae.encode(picture[:, :, None])  # [1, 48, 1, h, w]
    return ti2v_conditioning(encoded.expand(batch, -1, -1, -1, -1), latent_frames)
