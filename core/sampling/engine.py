"""`run_sampling`: the one way through the engine. Every caller (the Python API, the sampler node,
the long-video and Animate paths) builds a `SamplingRequest` and runs it here."""
from __future__ import annotations

from typing import Optional

import torch

from ..parallel.active import active as active_parallel_run
from ..cache.step_cache import StepCache
from ..progress import SILENT, Progress
from .branch import BranchConditioning, check_branch
from .conditioning import ImageConditioning, impose_known
from .freenoise import freenoise
from .guidance import guided_velocity
from .loop import run_loop
from .noise import seeded_noise
from .prompt_schedule import PromptSchedule
from .request import SamplingRequest
from .schedules import make_schedule
from .setup import check_image_conditioning, config_field, default_device, expert_per_step, start_shape, to_device
from .windowed import PreparedContexts, WindowPlan, window_velocity
from .windows import blend_coefficients, plan_windows


@torch.no_grad()
def run_sampling(request: SamplingRequest, progress: Optional[Progress] = None) -> torch.Tensor:
    """Sample the request's latents [B, C, T, H, W] (float32, a branch's reference frames dropped)."""
    progress = progress or SILENT
    run = active_parallel_run()  # a multi-process run (core/parallel): every rank gets here with the same request
    if run is not None:
        from ..parallel import sampling as parallel  # torch.distributed: imported only by parallel runs

        request, progress = parallel.prepare_request(run, request), parallel.collective_progress(run, progress)
    r, settings = request, request.settings
    shape = start_shape(_branch_shape(r) if r.shape is None and r.latents is None else r.shape, r.latents, settings)
    check_branch(r.branch, shape, settings.partial, r.image is not None)
    device = torch.device(r.device) if r.device is not None else default_device(r.dit, r.latents)
    prefix = r.branch.reference_frames if r.branch is not None else 0
    long = r.long_video
    video_frames = shape[2] - prefix
    windows = plan_windows(video_frames, long.window, long.overlap) if long is not None else plan_windows(
        video_frames, video_frames, 0)
    image = _checked_image(r.image, shape, windows, long, device)

    schedule = make_schedule(settings)
    experts = expert_per_step(r.dit, r.dit_low_noise, settings, schedule.timesteps)
    if r.negative is None and any(scale != 1 for _, scale in experts):
        raise ValueError("cfg != 1 needs a negative conditioning; pass negative= (e.g. the encoded "
                         "WAN_NEGATIVE_PROMPT) or set cfg=1.0 (and cfg_low_noise=1.0) to sample without guidance.")
    noise = (freenoise(shape, settings.seed, windows, device, prefix) if long is not None and long.freenoise
             else seeded_noise(shape, settings.seed, device))  # [B, C, P + T, H, W]
    if r.latents is None:
        x = noise
    else:
        start = float(schedule.sigmas[0])
        x = (1 - start) * r.latents.to(device, torch.float32) + start * noise
    x = impose_known(x, image)

    excluded = frozenset((k, 0) for k in range(1, len(windows))) if _continues_known(image) else frozenset()
    shares = [c.to(device)[None, None, :, None, None] for c in
              blend_coefficients(windows, video_frames, long.blend if long is not None else "flat", excluded)]
    prompts = r.positive if isinstance(r.positive, PromptSchedule) else None
    segment_contexts = ([to_device(s.positive, device) for s in prompts.segments] if prompts is not None
                        else [to_device(r.positive, device)])
    plan = WindowPlan(
        windows=windows, shares=shares, prefix=prefix,
        contexts=[segment_contexts[prompts.index_for(w) if prompts is not None else 0] for w in windows],
        negative=to_device(r.negative, device),
        models=[_step_cache_view(r, schedule, run and parallel.agree(run)) for _ in windows],
        image=image, branch=_branch_on(r.branch, device),
        patch=tuple(config_field(r.dit, "patch_size") or (1, 2, 2))[1:], prepared=PreparedContexts(),
        drift_strength=long.drift_strength if long is not None else 0.0,
        guidance=(run and parallel.cfg_guidance(run)) or guided_velocity,
        spread=run and parallel.window_spread(run),
    )
    velocity_at = window_velocity(plan, schedule.sigmas, schedule.timesteps, experts, progress)
    x = run_loop(x, schedule, settings.solver, velocity_at, progress,
                 after_step=(lambda x: impose_known(x, image)) if image is not None else None)
    return x[:, :, prefix:]


def _branch_shape(r: SamplingRequest):
    """Without shape or latents a branch sets the shape (one video); otherwise start_shape says what's missing."""
    return (1, *r.branch.latent_shape[1:]) if r.branch is not None else None


def _checked_image(image: Optional[ImageConditioning], shape: tuple, windows, long, device
                   ) -> Optional[ImageConditioning]:
    """The image conditioning on the run's device, checked against the latents. An I2V `y` may cover the whole
    clip or only the first window (later windows reuse its zero-image frames)."""
    if image is None:
        return None
    if len(windows) > 1 and long.overlap < 1:
        raise ValueError("image-conditioned long videos continue each window from the previous one's last "
                         "frames, so windows must overlap: set overlap >= 1 (e.g. a third of the window).")
    one_window_y = image.y is not None and image.y.shape[2] == windows[0].length < shape[2]
    check_image_conditioning(ImageConditioning(None, image.clip_fea, image.known_latent, image.known_mask)
                             if one_window_y else image, shape)
    return image.to(device)


def _continues_known(image: Optional[ImageConditioning]) -> bool:
    """Known-frame models (TI2V) take a later window's first frame as given: its output there must not count."""
    return image is not None and image.known_mask is not None


def _step_cache_view(r: SamplingRequest, schedule, agree=None):
    """For one window: raw model -> the model to call. Each window gets its own step cache, since consecutive
    DiT calls of a step belong to different windows; the cache spans both experts (a switch forces a full call)."""
    if r.step_cache is None:
        return lambda model: model
    cache = StepCache(r.step_cache, schedule.num_steps, schedule.sigmas.tolist(), agree=agree)
    views = {}

    def view(model):
        if id(model) not in views:
            views[id(model)] = cache.wrap(model)
        return views[id(model)]

    return view


def _branch_on(branch: Optional[BranchConditioning], device) -> Optional[BranchConditioning]:
    if branch is None:
        return None
    inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in branch.inputs.items()}
    return BranchConditioning(branch.kind, inputs, branch.latent_shape, branch.reference_frames)
