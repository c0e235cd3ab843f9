"""High-level sampling calls: `sample` (encoded conditioning -> latents) and `generate` (prompt -> latents)."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..progress import SILENT, Progress
from .conditioning import ImageConditioning, impose_known, token_timesteps
from .guidance import WAN_NEGATIVE_PROMPT, guided_velocity
from .loop import run_loop
from .noise import seeded_noise
from .schedules import make_schedule
from .settings import SamplerSettings
from .setup import (check_image_conditioning, config_field, default_device, expert_per_step, image_conditioning,
                    start_shape, to_device)
from .shapes import latent_shape


@torch.no_grad()
def sample(
    dit,
    positive,
    negative=None,
    *,
    settings: SamplerSettings,
    shape: Optional[Sequence[int]] = None,
    latents: Optional[torch.Tensor] = None,
    dit_low_noise=None,
    image: Optional[ImageConditioning] = None,
    progress: Optional[Progress] = None,
    device: Optional[torch.device | str] = None,
    model_kwargs: Optional[dict] = None,
) -> torch.Tensor:
    """Sample latents [B, C, T, H, W] (float32).

    `positive` / `negative`: encoded text, a [B, L, D] tensor or a list of [L_i, D] (negative
    may be None only with cfg 1). Give `shape` to start from seeded noise, or `latents` to
    start from given latents noised to the first sigma (needed for denoise < 1, start_sigma,
    start_step). With `dit_low_noise`, `dit` is the Wan2.2 high-noise expert. `model_kwargs`
    go to every DiT call as they are (tensors moved to the device), e.g. VACE's `vace_context` or
    Animate's `y`, `pose_latents`, `face_pixels`.
    """
    shape = start_shape(shape, latents, settings)
    device = torch.device(device) if device is not None else default_device(dit, latents)
    check_image_conditioning(image, shape)
    progress = progress or SILENT

    schedule = make_schedule(settings)
    noise = seeded_noise(shape, settings.seed, device)  # [B, C, T, H, W]
    if latents is None:
        x = noise
    else:
        start = float(schedule.sigmas[0])
        x = (1 - start) * latents.to(device, torch.float32) + start * noise
    x = impose_known(x, image)

    patch = tuple(config_field(dit, "patch_size") or (1, 2, 2))[1:]  # spatial patch of the DiT tokens
    experts = expert_per_step(dit, dit_low_noise, settings, schedule.timesteps)
    if negative is None and any(scale != 1 for _, scale in experts):
        raise ValueError("cfg != 1 needs a negative conditioning; pass negative= (e.g. the encoded "
                         "WAN_NEGATIVE_PROMPT) or set cfg=1.0 (and cfg_low_noise=1.0) to sample without guidance.")
    positive, negative = to_device(positive, device), to_device(negative, device)
    extra = {}
    if image is not None and image.y is not None:
        extra["y"] = image.y.to(device)
    if image is not None and image.clip_fea is not None:
        extra["clip_fea"] = image.clip_fea.to(device)
    for name, value in (model_kwargs or {}).items():
        if name in extra:
            raise ValueError(f"model_kwargs[{name!r}] would replace the image conditioning's {name}; give it once.")
        extra[name] = value.to(device) if isinstance(value, torch.Tensor) else value

    def velocity_at(x: torch.Tensor, i: int) -> torch.Tensor:
        model, scale = experts[i]
        t = schedule.timesteps[i].to(device).expand(shape[0])  # [B]
        if image is not None and image.known_mask is not None:
            t = token_timesteps(t, image.known_mask.to(device), patch)  # [B, L]
        return guided_velocity(lambda context: model(x, t, context, **extra), positive, negative, scale)

    return run_loop(x, schedule, settings.solver, velocity_at, progress,
                    after_step=(lambda x: impose_known(x, image)) if image is not None else None)


@torch.no_grad()
def generate(
    dit,
    text_encoder,
    prompt: str,
    negative_prompt: Optional[str] = None,
    *,
    width: int,
    height: int,
    frames: int,
    settings: SamplerSettings = SamplerSettings(),
    dit_low_noise=None,
    vae=None,
    start_image: Optional[torch.Tensor] = None,
    progress: Optional[Progress] = None,
    latent_channels: Optional[int] = None,
    device: Optional[torch.device | str] = None,
) -> torch.Tensor:
    """Prompt (+ optional start image [3, H, W] in [-1, 1]) -> latents [1, C, T, H, W].

    `negative_prompt` None uses Wan's default Chinese negative prompt. Latent channels come
    from `dit.config.out_dim` (or `latent_channels` for models without a config).
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}.")
    channels = config_field(dit, "out_dim") or latent_channels
    if channels is None:
        raise ValueError("cannot tell the latent channel count: the model has no config.out_dim; "
                         "pass latent_channels=16 (Wan2.1 VAE) or 48 (Wan2.2 VAE).")
    shape = latent_shape(frames, height, width, channels)
    device = torch.device(device) if device is not None else default_device(dit, None)
    image = image_conditioning(dit, vae, start_image, shape, frames, height, width, device)

    positive = text_encoder.encode([prompt])
    low_cfg = settings.cfg if settings.cfg_low_noise is None else settings.cfg_low_noise
    negative = None
    if settings.cfg != 1 or (dit_low_noise is not None and low_cfg != 1):
        negative = text_encoder.encode([WAN_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt])
    return sample(dit, positive, negative, settings=settings, shape=shape, dit_low_noise=dit_low_noise,
                  image=image, progress=progress, device=device)
