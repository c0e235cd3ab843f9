"""The DiT sampler node: flow-matching sampling with optional Wan2.2 expert switching, start image, long-video
context windows and a refine pass from a start sigma."""
from __future__ import annotations

from typing import Optional

import torch

from . import host
from .conditioning_pose import BRANCH_CONDITIONING, BranchConditioning
from .longvideo import LONG_VIDEO, LongVideo
from .step_cache import STEP_CACHE, cached_models
from .types import CONDITIONING, DIT, VAE, Conditioning, DiTModel, VAEModel

SOLVERS = ["unipc", "euler", "dpmpp_2m"]  # core.sampling.SOLVERS; listed here so the node list loads without torch work
MAX_SEED = 2**64 - 1


class KinemaSampler:
    DESCRIPTION = ("Samples a latent video with a Wan DiT. Connect dit_low_noise for Wan2.2 A14B (dit is then the "
                   "high-noise expert); connect start_image and vae for image-to-video (I2V / TI2V-5B).")
    CATEGORY = "Kinema/sampling"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("samples",)
    OUTPUT_TOOLTIPS = ("Sampled latent video [B, C, T, H, W] for the decode nodes.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dit": (DIT, {"tooltip": "From KinemaDiTLoader; the high-noise expert when dit_low_noise is set."}),
                "conditioning": (CONDITIONING, {"tooltip": "From KinemaTextEncode."}),
                "latent": ("LATENT", {"tooltip":
                    "Sets the video size: an empty latent from KinemaEmptyLatent, or a latent video to refine "
                    "(with denoise < 1)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                                 "tooltip": "Noise seed; the noise is drawn on the CPU, so a seed gives the same "
                                            "video on every machine."}),
                "steps": ("INT", {"default": 30, "min": 1, "max": 1000, "tooltip":
                    "Sampling steps (Wan uses 50; 20-30 is usually enough with unipc)."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip":
                    "Classifier-free guidance scale; 1.0 turns guidance off (twice as fast)."}),
                "shift": ("FLOAT", {"default": 5.0, "min": 0.01, "max": 100.0, "step": 0.1, "round": 0.01,
                                    "tooltip": "Time shift of the noise schedule: higher spends more steps at high "
                                               "noise (Wan: 5.0; 3.0 for 480p Wan2.1; 12.0 for Wan2.2 T2V A14B)."}),
                "solver": (SOLVERS, {"default": "unipc", "tooltip":
                    "unipc (Wan's default, best at few steps), euler, or dpmpp_2m."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip":
                    "1.0 samples from pure noise; lower keeps that much of the input latent (video-to-video)."}),
                "boundary": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.999, "step": 0.005, "tooltip":
                    "Two experts only: the high-noise expert runs while t >= boundary * 1000. 0 = Wan's value "
                    "(0.875 text-to-video, 0.9 image-to-video)."}),
                "cfg_low_noise": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01,
                                            "tooltip": "Two experts only: guidance scale of the low-noise expert; "
                                                       "0 = same as cfg (Wan2.2 A14B uses 3.0 low / 4.0 high)."}),
            },
            "optional": {
                "dit_low_noise": (DIT, {"tooltip": "Wan2.2 A14B low-noise expert; runs the steps after the boundary."}),
                "start_image": ("IMAGE", {"tooltip":
                    "First frame for image-to-video (I2V models, Wan2.2 TI2V-5B); resized and centre-cropped "
                    "to the latent's size. Needs vae."}),
                "vae": (VAE, {"tooltip": "Encodes start_image; the same VAE you decode with."}),
                "step_cache": (STEP_CACHE, {"tooltip": "From KinemaStepCache: skip DiT evaluations while the output "
                                                       "barely changes (not for 4-step distilled models)."}),
                "branch": (BRANCH_CONDITIONING, {"tooltip":
                    "From KinemaAnimateConditioning / KinemaVACEConditioning; sets the video frames and size (the "
                    "latent then only gives the batch)."}),
                "long_video": (LONG_VIDEO, {"tooltip": "From KinemaLongVideoSettings: any length, sampled in "
                                                       "overlapping context windows (memory per frame stays flat)."}),
                "start_sigma": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.999, "step": 0.01, "tooltip":
                    "Refine pass (e.g. after KinemaLatentUpscale): start at this noise level; 0 = off. Unlike "
                    "denoise it means the same amount of noise under any shift; 0.3-0.6 refines."}),
            },
        }

    def sample(self, dit: DiTModel, conditioning: Conditioning, latent: dict, seed: int, steps: int, cfg: float,
               shift: float, solver: str, denoise: float, boundary: float, cfg_low_noise: float,
               dit_low_noise: Optional[DiTModel] = None, start_image: Optional[torch.Tensor] = None,
               vae: Optional[VAEModel] = None, step_cache=None, branch: Optional[BranchConditioning] = None,
               long_video: Optional[LongVideo] = None, start_sigma: float = 0.0):
        from ..core.sampling import SamplerSettings, sample

        if start_sigma and denoise != 1:
            raise ValueError(f"KinemaSampler: denoise {denoise} and start_sigma {start_sigma} both start part-way; "
                             "use one: set denoise to 1.0 to refine from start_sigma, or start_sigma to 0.")
        if long_video is not None:
            _check_long_video(step_cache, branch)
        settings = SamplerSettings(
            steps=steps, cfg=cfg, shift=shift, solver=solver, seed=seed, denoise=denoise,
            start_sigma=start_sigma or None, boundary=boundary or None, cfg_low_noise=cfg_low_noise or None,
        )
        samples = latent["samples"]  # [B, C, T, H, W]
        batch = samples.shape[0]
        start = {"latents": samples} if settings.partial else {"shape": tuple(samples.shape)}
        model_kwargs = None
        if branch is not None:
            start, model_kwargs = _branch_start(branch, settings, start_image, batch)
        positive, run, extra = [conditioning.positive] * batch, sample, {"model_kwargs": model_kwargs}
        image_shape = tuple(samples.shape)
        if long_video is not None:
            from ..core.longvideo import sample_long

            run, extra = sample_long, {"long": long_video.settings}
            if long_video.prompts is not None:  # each segment's prompt, once per video of the batch
                positive = long_video.prompts.encoded([[s.positive] * batch for s in long_video.prompts.segments])
            if dit.model.config.in_dim > dit.model.config.out_dim:  # I2V: later windows reuse the first one's y
                image_shape = (*image_shape[:2], min(image_shape[2], long_video.settings.window), *image_shape[3:])
        image = _start_image(dit, vae, start_image, image_shape) if start_image is not None else None
        model, model_low_noise, _ = cached_models(step_cache, settings, dit.model,
                                                  dit_low_noise.model if dit_low_noise is not None else None)
        with host.progress("Kinema sampling", steps) as progress:
            result = run(
                model, positive, [conditioning.negative] * batch, settings=settings, dit_low_noise=model_low_noise,
                image=image, progress=progress, device=host.torch_device(), **extra, **start,
            )
        if branch is not None:
            result = result[:, :, branch.reference_frames:]  # the reference frames are not part of the video
        host.empty_cache()
        return ({"samples": result.cpu()},)


def _check_long_video(step_cache, branch: Optional[BranchConditioning]) -> None:
    if step_cache is not None:
        raise ValueError("KinemaSampler: step_cache cannot be used with long_video: consecutive DiT calls there are "
                         "different windows of the video, so a cached output would be pasted into another window; "
                         "disconnect step_cache (or long_video).")
    if branch is not None:
        raise ValueError(f"KinemaSampler: long_video cannot be used with the {branch.kind} branch, which conditions "
                         "one clip of its own length; disconnect long_video (or the branch).")


def _branch_start(branch: BranchConditioning, settings, start_image, batch: int) -> tuple[dict, dict]:
    """The noise shape and DiT inputs of an Animate/VACE branch, for `batch` videos."""
    if settings.partial:
        raise ValueError(f"KinemaSampler: the {branch.kind} branch samples a new video from noise; set denoise to "
                         "1.0 and start_sigma to 0 (refinement with a branch is not supported).")
    if start_image is not None:
        raise ValueError(f"KinemaSampler: the {branch.kind} branch brings its own reference; disconnect start_image.")
    model_kwargs = {name: value.expand(batch, *value.shape[1:]) if isinstance(value, torch.Tensor) else value
                    for name, value in branch.model_kwargs.items()}
    return {"shape": (batch, *branch.latent_shape[1:])}, model_kwargs


def _start_image(dit: DiTModel, vae: Optional[VAEModel], image: torch.Tensor, shape):
    """ComfyUI IMAGE [N, H, W, 3] in 0..1 (first image used) -> the model's image conditioning."""
    from ..core.sampling.setup import image_conditioning

    if vae is None:
        raise ValueError("KinemaSampler: start_image needs the VAE to encode it; connect KinemaVAELoader to 'vae'.")
    if dit.model.config.in_dim <= shape[1] and shape[1] != 48:
        raise ValueError(f"KinemaSampler: {dit.name} is a text-to-video model and takes no start_image; use an I2V "
                         "model or Wan2.2 TI2V-5B, or disconnect start_image.")
    picture = image[:1].permute(0, 3, 1, 2).float() * 2 - 1  # [1, 3, h, w] in [-1, 1]
    strides = vae.model.config
    frames = (shape[2] - 1) * strides.temporal_stride + 1
    return image_conditioning(dit.model, vae.model, picture, shape, frames, shape[3] * strides.spatial_stride,
                              shape[4] * strides.spatial_stride, host.torch_device())


NODE_CLASS_MAPPINGS = {"KinemaSampler": KinemaSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaSampler": "Kinema Sampler"}
