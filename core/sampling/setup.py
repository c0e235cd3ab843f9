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
                       long_video=None, end_image: Optional[torch.Tensor] = None,
                       clip_fea: Optional[torch.Tensor] = None) -> Optional[ImageConditioning]:
    """The start image's conditioning for latents of `shape` [B, C, T, h, w], or None without one.

    `start_image` / `end_image`: [3, H, W] or [1, 3, H, W] in [-1, 1], any size (cover-resized and
    centre-cropped to the video). I2V models get the image's latents beside the noise and refuse to run
    without one; with `end_image` (FLF2V, and any I2V model) the last frame is given too. Wan2.2 TI2V-5B
    gets the start image as a known first latent frame. `clip_fea` [1 or B, N, image_dim]: CLIP vision
    features (`core.clip_vision`) for models with a CLIP branch (Wan2.1 I2V-14B: 257 tokens of the start
    image; FLF2V: 514, start then end). With `long_video` an I2V model's conditioning covers the first
    window only (later windows reuse its zero-image frames, so a long run never encodes minutes of grey
    frames).
    """
    batch, channels, latent_frames = shape[:3]
    mode = image_mode(dit, channels)
    if start_image is None:
        if mode == "concat":
            raise ValueError(f"this is an image-to-video model (in_dim {config_field(dit, 'in_dim')} > out_dim "
                             f"{channels}): pass start_image= and vae=.")
        if end_image is not None or clip_fea is not None:
            raise ValueError("end_image and CLIP image features go with a start_image (the video starts from it); "
                             "pass start_image= too.")
        return None
    if mode is None:
        raise ValueError("this is a text-to-video model and takes no start_image (it does not take a start image); "
                         "use an I2V model or Wan2.2 TI2V-5B, or disconnect start_image.")
    if vae is None:
        raise ValueError("start_image needs the VAE to encode it: pass vae=.")
    clip_fea = _checked_clip_features(dit, clip_fea, batch)
    if end_image is not None and mode != "concat":
        raise ValueError("Wan2.2 TI2V-5B takes a start image only, no end_image; use Wan2.1 FLF2V / I2V-14B or "
                         "Wan2.2 I2V-A14B for start and end frames, or disconnect end_image.")
    if end_image is not None and long_video is not None:
        raise ValueError("end_image fixes the last frame of one clip; a long_video run has no single last clip "
                         "frame. Disconnect end_image or long_video.")
    stride = spatial_stride(channels)
    size = (shape[3] * stride, shape[4] * stride)
    picture = fit_image(start_image, *size).to(device)  # [1, 3, H, W]
    if mode == "concat":
        if long_video is not None:
            latent_frames = min(latent_frames, long_video.window)
        pixel_frames = (latent_frames - 1) * TEMPORAL_STRIDE + 1
        last = None if end_image is None else fit_image(end_image, *size).to(device)  # [1, 3, H, W]
        encoded = vae.encode(first_frame_video(picture, pixel_frames, last))  # [1, C, T, h, w]
        return i2v_conditioning(encoded.expand(batch, -1, -1, -1, -1), pixel_frames,
                                clip_fea=None if clip_fea is None else clip_fea.to(device), end_frame=last is not None)
    encoded = vae.encode(picture[:, :, None])  # [1, 48, 1, h, w]
    return ti2v_conditioning(encoded.expand(batch, -1, -1, -1, -1), latent_frames)


def _checked_clip_features(dit, clip_fea: Optional[torch.Tensor], batch: int) -> Optional[torch.Tensor]:
    """`clip_fea` [1 or B, N, image_dim] as the DiT reads it ([B, N, image_dim]); a clear error when the model
    needs features it did not get, gets features it cannot read, or the wrong number of tokens (FLF2V)."""
    image_dim, tokens = config_field(dit, "image_dim"), config_field(dit, "image_tokens")
    if clip_fea is None:
        if image_dim is not None:
            raise ValueError("this Wan2.1 I2V / FLF2V model reads CLIP image features of the start image (FLF2V: "
                             "start and end images): encode them with the ViT-H/14 CLIP vision model "
                             "(clip_vision_h.safetensors) and pass clip_fea= (nodes: KinemaCLIPVisionEncode into "
                             "the sampler's image_features).")
        return None
    if image_dim is None:
        raise ValueError("this model has no CLIP image branch (Wan2.2 I2V-A14B and TI2V-5B take none); "
                         "disconnect the CLIP image features.")
    if clip_fea.dim() != 3 or clip_fea.shape[-1] != image_dim or clip_fea.shape[0] not in (1, batch):
        raise ValueError(f"CLIP features must be [1 or {batch}, tokens, {image_dim}], got {tuple(clip_fea.shape)}; "
                         "use the ViT-H/14 CLIP vision model (clip_vision_h.safetensors).")
    if tokens is not None and clip_fea.shape[1] != tokens:
        raise ValueError(f"this FLF2V model reads {tokens} CLIP tokens (start and end image, {tokens // 2} each), "
                         f"got {clip_fea.shape[1]}; encode both the start and the end image.")
    return clip_fea.expand(batch, -1, -1)
