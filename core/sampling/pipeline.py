"""The Python API's sampling calls: `sample` (encoded conditioning -> latents) and `generate` (prompt ->
latents). Both build one `SamplingRequest` and run it with `run_sampling`, so every feature (long video,
step cache, branches, start image, two experts) is reachable from Python as from the node."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..cache.step_cache import StepCacheSettings
from ..progress import Progress
from .branch import BranchConditioning
from .conditioning import ImageConditioning
from .engine import run_sampling
from .guidance import WAN_NEGATIVE_PROMPT
from .long_video import LongVideoSettings
from .prompt_schedule import PromptSchedule
from .request import SamplingRequest
from .settings import SamplerSettings
from .setup import config_field, default_device, image_conditioning
from .shapes import latent_shape


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
    branch: Optional[BranchConditioning] = None,
    long_video: Optional[LongVideoSettings] = None,
    step_cache: Optional[StepCacheSettings] = None,
    progress: Optional[Progress] = None,
    device: Optional[torch.device | str] = None,
) -> torch.Tensor:
    """Sample latents [B, C, T, H, W] (float32) from encoded conditioning; see `SamplingRequest`
    for what each argument means."""
    request = SamplingRequest(
        dit=dit, positive=positive, negative=negative, settings=settings,
        shape=tuple(shape) if shape is not None else None, latents=latents, dit_low_noise=dit_low_noise,
        image=image, branch=branch, long_video=long_video, step_cache=step_cache, device=device,
    )
    return run_sampling(request, progress)


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
    end_image: Optional[torch.Tensor] = None,
    clip_vision=None,
    long_video: Optional[LongVideoSettings] = None,
    prompt_schedule: Optional[PromptSchedule] = None,
    step_cache: Optional[StepCacheSettings] = None,
    progress: Optional[Progress] = None,
    latent_channels: Optional[int] = None,
    device: Optional[torch.device | str] = None,
) -> torch.Tensor:
    """Prompt (+ optional start image [3, H, W] in [-1, 1]) -> latents [1, C, T, H, W].

    `end_image` (same form): the last frame (FLF2V; also Wan2.1 I2V-14B and Wan2.2 I2V-A14B).
    `clip_vision` (`core.clip_vision.load_clip_vision`): encodes the start (and end) image into the CLIP
    features Wan2.1 I2V-14B and FLF2V read.

    `negative_prompt` None uses Wan's default negative prompt. `long_video` samples any length in
    context windows; `prompt_schedule` (from `parse_schedule`, needs `long_video`) replaces `prompt`
    stretch by stretch; `step_cache` skips DiT evaluations while the output barely changes. Latent
    channels come from `dit.config.out_dim` (or `latent_channels` for models without a config).
    """
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}.")
    if prompt_schedule is not None and long_video is None:
        raise ValueError("prompt_schedule drives the context windows of a long video; pass long_video= too "
                         "(e.g. LongVideoSettings(window=21, overlap=7)).")
    channels = config_field(dit, "out_dim") or latent_channels
    if channels is None:
        raise ValueError("cannot tell the latent channel count: the model has no config.out_dim; "
                         "pass latent_channels=16 (Wan2.1 VAE) or 48 (Wan2.2 VAE).")
    shape = latent_shape(frames, height, width, channels)
    device = torch.device(device) if device is not None else default_device(dit, None)
    clip_fea = None
    if clip_vision is not None and start_image is not None:
        pictures = [p if p.dim() == 4 else p[None] for p in (start_image, end_image) if p is not None]
        clip_fea = torch.cat([clip_vision.encode(p) for p in pictures], dim=1)  # [1, images x 257, 1280]
    image = image_conditioning(dit, vae, start_image, shape, device, long_video, end_image=end_image,
                               clip_fea=clip_fea)

    positive = text_encoder.encode([prompt])
    if prompt_schedule is not None:
        positive = prompt_schedule.encoded([text_encoder.encode([s.prompt]) for s in prompt_schedule.segments])
    low_cfg = settings.cfg if settings.cfg_low_noise is None else settings.cfg_low_noise
    negative = None
    if settings.cfg != 1 or (dit_low_noise is not None and low_cfg != 1):
        negative = text_encoder.encode([WAN_NEGATIVE_PROMPT if negative_prompt is None else negative_prompt])
    return sample(dit, positive, negative, settings=settings, shape=shape, dit_low_noise=dit_low_noise, image=image,
                  long_video=long_video, step_cache=step_cache, progress=progress, device=device)

