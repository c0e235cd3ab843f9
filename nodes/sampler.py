"""The DiT sampler node: flow-matching sampling with optional Wan2.2 expert switching, start image, long-video
context windows and a refine pass from a start sigma."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Optional

import torch

from . import host
from ..core.sampling.branch import BranchConditioning, check_branch
from ..core.sampling.settings import SOLVERS
from .conditioning_pose import BRANCH_CONDITIONING
from .latent_space import model_to_raw, raw_to_model
from .longvideo import LONG_VIDEO, LongVideo
from .step_cache import STEP_CACHE
from .types import CLIP_VISION_OUTPUT, CONDITIONING, DIT, MODEL, VAE, Conditioning, DiTModel, VAEModel
MAX_SEED = 2**64 - 1


class KinemaSampler:
    DESCRIPTION = ("Samples a latent video with a Wan DiT. Connect dit_low_noise for Wan2.2 A14B (dit is then the "
                   "high-noise expert); connect start_image and vae for image-to-video (I2V / TI2V-5B).")
    CATEGORY = "Kinema/sampling"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("samples",)
    OUTPUT_TOOLTIPS = ("Sampled latent video [B, C, T, H, W], raw VAE latents as in native ComfyUI: Kinema's or "
                       "native VAEDecode read it.",)
    FUNCTION = "sample"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dit": (f"{DIT},{MODEL}", {"tooltip": "From KinemaDiTLoader, or a native Wan MODEL (UNETLoader, a GGUF "
                                                   "loader, LoRA nodes); the high-noise expert when dit_low_noise is "
                                                   "set."}),
                "conditioning": (CONDITIONING, {"tooltip": "From KinemaTextEncode."}),
                "latent": ("LATENT", {"tooltip":
                    "Sets the video size: an empty latent from KinemaEmptyLatent, or a latent video to refine "
                    "(with denoise < 1) from KinemaVAEEncode or native VAEEncode (raw VAE latents, as native "
                    "ComfyUI)."}),
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
                "solver": (list(SOLVERS), {"default": "unipc", "tooltip":
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
                "dit_low_noise": (f"{DIT},{MODEL}", {"tooltip": "Wan2.2 A14B low-noise expert (Kinema's or a native "
                                                              "MODEL); runs the steps after the boundary."}),
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
                "end_image": ("IMAGE", {"tooltip":
                    "Last frame (Wan2.1 FLF2V, also Wan2.1 I2V-14B and Wan2.2 I2V-A14B); needs start_image and vae."}),
                "image_features": (CLIP_VISION_OUTPUT, {"tooltip":
                    "CLIP features of start_image (FLF2V: of start and end image) from KinemaCLIPVisionEncode or "
                    "native CLIPVisionEncode; Wan2.1 I2V-14B and FLF2V need them, other models take none."}),
            },
        }

    def sample(self, dit: DiTModel, conditioning: Conditioning, latent: dict, seed: int, steps: int, cfg: float,
               shift: float, solver: str, denoise: float, boundary: float, cfg_low_noise: float,
               dit_low_noise: Optional[DiTModel] = None, start_image: Optional[torch.Tensor] = None,
               vae: Optional[VAEModel] = None, step_cache=None, branch: Optional[BranchConditioning] = None,
               long_video: Optional[LongVideo] = None, start_sigma: float = 0.0,
               end_image: Optional[torch.Tensor] = None, image_features=None):
        from ..core.sampling import SamplerSettings, SamplingRequest, run_sampling
        from .native_model import as_dit

        dit = as_dit(dit, "dit")  # a native MODEL becomes a velocity model the engine calls
        dit_low_noise = None if dit_low_noise is None else as_dit(dit_low_noise, "dit_low_noise")
        if start_sigma and denoise != 1:
            raise ValueError(f"KinemaSampler: denoise {denoise} and start_sigma {start_sigma} both start part-way; "
                             "use one: set denoise to 1.0 to refine from start_sigma, or start_sigma to 0.")
        settings = SamplerSettings(
            steps=steps, cfg=cfg, shift=shift, solver=solver, seed=seed, denoise=denoise,
            start_sigma=start_sigma or None, boundary=boundary or None, cfg_low_noise=cfg_low_noise or None,
        )
        samples = latent["samples"]  # [B, C, T, H, W]
        batch = samples.shape[0]
        shape = tuple(samples.shape) if branch is None else (batch, *branch.latent_shape[1:])
        positive = [conditioning.positive] * batch
        if long_video is not None and long_video.prompts is not None:  # each segment's prompt, once per video
            positive = long_video.prompts.encoded([[s.positive] * batch for s in long_video.prompts.segments])
        long = long_video.settings if long_video is not None else None
        with _named_errors(dit):
            check_branch(branch, shape, settings.partial, start_image is not None)  # before encoding a start image
            request = SamplingRequest(
                dit=dit.model, positive=positive, negative=[conditioning.negative] * batch, settings=settings,
                shape=None if settings.partial else shape,
                latents=raw_to_model(samples, "KinemaSampler") if settings.partial else None,
                dit_low_noise=dit_low_noise.model if dit_low_noise is not None else None,
                image=_start_image(dit, vae, start_image, shape, long, end_image, image_features),
                branch=branch, long_video=long, step_cache=step_cache, device=host.torch_device(),
            )
            chain = {}
            if long_video is not None and getattr(branch, "drive", None) is not None:
                result, chain["kinema_clips"] = _animate_clips(request, branch.drive, long_video, steps)
            else:
                with host.progress("Kinema sampling", steps) as progress:
                    result = run_sampling(request, progress)
        host.empty_cache()
        # LATENT holds raw VAE latents, as native ComfyUI (the chain's clips stay in the DiT's space)
        return ({"samples": model_to_raw(result.cpu(), "KinemaSampler"), **chain},)


def _animate_clips(request, drive, long_video: LongVideo, steps: int):
    """Wan-Animate over the whole driving video: official clips chained one after another (core.sampling.segments);
    returns their latents end to end and the ClipChain the decode nodes follow."""
    from ..core.sampling.segments import clip_count, sample_chained

    if long_video.prompts is not None:
        raise ValueError("long Animate follows one prompt; disconnect the prompt schedule from KinemaLongVideoSettings.")
    clips = clip_count(drive, long_video.animate_overlap)
    with host.progress(f"Kinema Animate ({clips} clips)", steps * clips) as progress:
        return sample_chained(request, drive, long_video.animate_overlap, progress)


@contextmanager
def _named_errors(dit: DiTModel):
    """The core's input errors, prefixed with the node and the model file, so the UI says where to look."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"KinemaSampler ({dit.name}): {error}") from None


def _start_image(dit: DiTModel, vae: Optional[VAEModel], image: Optional[torch.Tensor], shape: tuple, long,
                 end_image: Optional[torch.Tensor] = None, image_features=None):
    """ComfyUI IMAGEs [N, H, W, 3] in 0..1 (first image used) and CLIP features -> the model's image conditioning
    (None without any of them)."""
    from ..core.sampling.setup import image_conditioning
    from .clip_vision import image_features_tensor

    if image is None and end_image is None and image_features is None:
        return None
    if image is not None and vae is None:
        raise ValueError("start_image needs the VAE to encode it; connect KinemaVAELoader to 'vae'.")
    as_rgb = lambda i: None if i is None else i[:1].permute(0, 3, 1, 2).float() * 2 - 1  # noqa: E731 [1, 3, h, w]
    return image_conditioning(dit.model, None if vae is None else vae.model, as_rgb(image), shape,
                              host.torch_device(), long, end_image=as_rgb(end_image),
                              clip_fea=image_features_tensor(image_features, "KinemaSampler"))


NODE_CLASS_MAPPINGS = {"KinemaSampler": KinemaSampler}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaSampler": "Kinema Sampler"}
