"""Long-video sampling with context windows: at every step each window is denoised as its own short
clip and the windows' velocities are blended into one velocity for the whole latent.

Why per-step blending rather than generating chunk after chunk: neighbouring windows agree on their
overlap at every noise level, so there is no seam to hide (chunk-by-chunk generation has to glue
finished clips together and only constrains the new chunk through replaced frames, which a model
not trained for continuation - Wan T2V, the demo model - often ignores). The DiT only ever sees one
window, so its positions stay in the trained range and attention cost is per window: the cost of a
step grows linearly with length (constant per frame). What is held for the whole length is the
latent and the solver state, a few times [C, T, H, W], tiny next to decoded frames.

Image-conditioned models continue in latent space: window k > 0 is conditioned on the current
clean estimate of its first frame, taken from window k - 1 in the same step (never decoded).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..progress import SILENT, Progress
from ..sampling.conditioning import ImageConditioning, impose_known, token_timesteps
from ..sampling.guidance import guided_velocity
from ..sampling.noise import seeded_noise
from ..sampling.loop import run_loop
from ..sampling.setup import (check_image_conditioning, config_field, default_device, expert_per_step, start_shape,
                              to_device)
from ..sampling.schedules import make_schedule
from ..sampling.settings import SamplerSettings
from .drift import ChannelStats, match_statistics
from .freenoise import freenoise
from .prompt_schedule import PromptSchedule
from .settings import LongVideoSettings
from .windows import Window, blend_coefficients, plan_windows


@torch.no_grad()
def sample_long(
    dit,
    positive,
    negative=None,
    *,
    settings: SamplerSettings,
    long: LongVideoSettings = LongVideoSettings(),
    shape: Optional[Sequence[int]] = None,
    latents: Optional[torch.Tensor] = None,
    dit_low_noise=None,
    image: Optional[ImageConditioning] = None,
    progress: Optional[Progress] = None,
    device: Optional[torch.device | str] = None,
) -> torch.Tensor:
    """Like `core.sampling.sample`, over context windows; `positive` may be an encoded PromptSchedule.

    An I2V `image.y` may cover the whole clip or only the first window (`long.window` latent frames).

    With a clip no longer than `long.window` this is exactly `sample` (same noise, same calls).
    """
    shape = start_shape(shape, latents, settings)
    device = torch.device(device) if device is not None else default_device(dit, latents)
    windows = plan_windows(shape[2], long.window, long.overlap)
    one_window_y = image is not None and image.y is not None and image.y.shape[2] == windows[0].length < shape[2]
    check_image_conditioning(_without_y(image) if one_window_y else image, shape)
    progress = progress or SILENT
    if image is not None and len(windows) > 1 and long.overlap < 1:
        raise ValueError("image-conditioned long videos continue each window from the previous one's last "
                         "frames, so windows must overlap: set overlap >= 1 (e.g. a third of the window).")
    continues_known = image is not None and image.known_mask is not None
    excluded = frozenset((k, 0) for k in range(1, len(windows))) if continues_known else frozenset()
    shares = [c.to(device)[None, None, :, None, None] for c in
              blend_coefficients(windows, shape[2], long.blend, excluded)]  # [1, 1, L, 1, 1] each

    schedule = make_schedule(settings)
    noise = (freenoise(shape, settings.seed, windows, device) if long.freenoise
             else seeded_noise(shape, settings.seed, device))  # [B, C, T, H, W]
    if latents is None:
        x = noise
    else:
        start = float(schedule.sigmas[0])
        x = (1 - start) * latents.to(device, torch.float32) + start * noise
    x = impose_known(x, image)

    patch = tuple(config_field(dit, "patch_size") or (1, 2, 2))[1:]
    experts = expert_per_step(dit, dit_low_noise, settings, schedule.timesteps)
    if negative is None and any(scale != 1 for _, scale in experts):
        raise ValueError("cfg != 1 needs a negative conditioning; pass negative= or set cfg=1.0.")
    prompts = positive if isinstance(positive, PromptSchedule) else None
    contexts = ([to_device(s.positive, device) for s in prompts.segments] if prompts is not None
                else [to_device(positive, device)])
    negative = to_device(negative, device)
    segment_of = [prompts.index_for(w) if prompts is not None else 0 for w in windows]
    image = _on_device(image, device)

    def velocity_at(x: torch.Tensor, i: int) -> torch.Tensor:
        model, scale = experts[i]
        sigma = float(schedule.sigmas[i])
        t = schedule.timesteps[i].to(device).expand(shape[0])  # [B]
        velocity = torch.zeros_like(x)
        references: dict[int, ChannelStats] = {}
        anchor = None  # [B, C, H, W] clean estimate of the next window's first frame
        for k, window in enumerate(windows):
            progress.check()
            cond = _window_image(image, window, k, anchor)
            xw = x[:, :, window.start:window.end]  # [B, C, L, H, W]
            if k > 0:
                xw = impose_known(xw, cond)
            tw = t if cond is None or cond.known_mask is None else token_timesteps(t, cond.known_mask, patch)
            extra = {} if cond is None else {n: v for n, v in (("y", cond.y), ("clip_fea", cond.clip_fea))
                                             if v is not None}
            vw = guided_velocity(lambda context: model(xw, tw, context, **extra), contexts[segment_of[k]],
                                 negative, scale)  # [B, C, L, H, W]
            if long.drift_strength:
                vw = _match_drift(xw, vw, sigma, references, segment_of[k], long.drift_strength)
            velocity[:, :, window.start:window.end] += shares[k] * vw
            if k + 1 < len(windows):
                anchor = (xw - sigma * vw)[:, :, windows[k + 1].start - window.start]
        return velocity

    return run_loop(x, schedule, settings.solver, velocity_at, progress,
                    after_step=(lambda x: impose_known(x, image)) if image is not None else None)


def _match_drift(xw: torch.Tensor, vw: torch.Tensor, sigma: float, references: dict, segment: int,
                 strength: float) -> torch.Tensor:
    """Match the window's clean estimate to the first window of the same prompt; back to a velocity."""
    x0 = xw - sigma * vw  # [B, C, L, H, W]
    if segment not in references:
        references[segment] = ChannelStats.of(x0)
        return vw
    return (xw - match_statistics(x0, references[segment], strength)) / sigma


def _window_image(image: Optional[ImageConditioning], window: Window, k: int,
                  anchor: Optional[torch.Tensor]) -> Optional[ImageConditioning]:
    """The image conditioning seen by window k: the start image for the first, the anchor frame later."""
    if image is None:
        return None
    y, known_latent, known_mask = image.y, image.known_latent, image.known_mask
    if y is not None:
        # y of the whole clip, or of the first window only (frames 1.. of every later window are the
        # same zero-image latents, so a 2-minute I2V run never encodes 2 minutes of grey frames)
        y = y[:, :, window.start:window.end] if y.shape[2] > window.length else y  # [B, 4 + C, L, H, W]
        if k > 0:
            y = y.clone()
            y[:, :4, 0] = 1  # the 4 mask channels of the first latent frame: known
            y[:, 4:, 0] = anchor
    if known_mask is not None:
        known_mask = known_mask[:, :, window.start:window.end]  # [1 or B, 1, L, H, W]
        known_latent = known_latent[:, :, window.start:window.end]  # [B, C, L, H, W]
        if k > 0:
            known_mask, known_latent = known_mask.clone(), known_latent.clone()
            known_mask[:, :, 0] = 1
            known_latent[:, :, 0] = anchor
    return ImageConditioning(y=y, clip_fea=image.clip_fea, known_latent=known_latent, known_mask=known_mask)


def _without_y(image: ImageConditioning) -> ImageConditioning:
    return ImageConditioning(None, image.clip_fea, image.known_latent, image.known_mask)


def _on_device(image: Optional[ImageConditioning], device) -> Optional[ImageConditioning]:
    if image is None:
        return None
    move = lambda v: None if v is None else v.to(device)  # noqa: E731
    return ImageConditioning(move(image.y), move(image.clip_fea), move(image.known_latent), move(image.known_mask))
