"""Latent upscaling for the 1080p path: x1.5 / x2 by direct interpolation, a VAE round trip or a learned model."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..core.upscale import SCALES as SCALE_FACTORS
from . import host
from .latent_space import model_to_raw, raw_to_model, raw_to_vae, vae_to_raw
from .types import VAE, VAEModel

UPSCALE_MODEL = "KINEMA_LATENT_UPSCALE_MODEL"
FOLDER = "latent_upscale_models"  # ComfyUI's folder for latent upscalers
METHODS = ["latent", "vae", "model"]
SCALES = [str(s) for s in sorted(SCALE_FACTORS, reverse=True)]  # "2.0" first: the default


@dataclass(frozen=True)
class UpscaleModel:
    model: Any  # core.upscale.LatentUpsampler
    name: str


class KinemaUpscaleModelLoader:
    DESCRIPTION = "Loads a Kinema latent upsampler (.safetensors) from models/latent_upscale_models."
    CATEGORY = "Kinema/loaders"
    RETURN_TYPES = (UPSCALE_MODEL,)
    RETURN_NAMES = ("upscale_model",)
    OUTPUT_TOOLTIPS = ("For KinemaLatentUpscale's 'model' method.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (host.model_files(FOLDER), {"tooltip":
            "A Kinema latent upsampler for the VAE's latents (LTX upsamplers do not work on Wan latents)."})}}

    def load(self, model_name: str):
        from ..core.upscale import load_upsampler

        model = load_upsampler(host.model_path(FOLDER, model_name), device=host.torch_device())
        return (UpscaleModel(model, model_name),)


class KinemaLatentUpscale:
    DESCRIPTION = ("Enlarges a latent video x1.5 or x2 (e.g. 960x544 -> 1920x1088) for a refine pass of "
                   "KinemaSampler with a start sigma. 'latent' resizes the latent directly (fast, soft), 'vae' "
                   "decodes, resizes and re-encodes chunk by chunk (memory stays flat), 'model' runs a learned "
                   "upsampler.")
    CATEGORY = "Kinema/latent"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("samples",)
    OUTPUT_TOOLTIPS = ("The enlarged latent video; sides stay even for the DiT.",)
    FUNCTION = "upscale"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "samples": ("LATENT", {"tooltip": "Latent video [B, C, T, H, W] from KinemaSampler."}),
                "method": (METHODS, {"default": "vae", "tooltip":
                    "latent: bicubic on the latent; vae: through pixels (needs vae); model: learned upsampler "
                    "(needs upscale_model)."}),
                "scale": (SCALES, {"default": "2.0", "tooltip": "2.0 (960x544 -> 1920x1088) or 1.5 (1280x720 -> "
                                                               "1920x1088)."}),
            },
            "optional": {
                "vae": (VAE, {"tooltip": "For the vae method: the VAE that made the latent."}),
                "upscale_model": (UPSCALE_MODEL, {"tooltip": "For the model method: from KinemaUpscaleModelLoader."}),
            },
        }

    def upscale(self, samples: dict, method: str, scale: str, vae: Optional[VAEModel] = None,
                upscale_model: Optional[UpscaleModel] = None):
        from ..core.upscale import interpolate_latents, vae_upscale

        raw, factor = samples["samples"], float(scale)  # [B, C, T, H, W], raw VAE latents
        if method == "latent":  # resizing is linear per channel: the same on raw or normalised latents
            result = interpolate_latents(raw, factor)
        elif method == "vae":
            if vae is None:
                raise ValueError("KinemaLatentUpscale: the vae method needs the VAE; connect KinemaVAELoader to 'vae' "
                                 "or choose the latent method.")
            latents = raw_to_vae(vae.model, raw, "KinemaLatentUpscale")
            with host.progress("latent upscale (VAE)", latents.shape[2]) as progress:
                result = vae_to_raw(vae.model, vae_upscale(vae.model, latents, factor, progress=progress),
                                    "KinemaLatentUpscale")
        elif method == "model":
            if upscale_model is None:
                raise ValueError("KinemaLatentUpscale: the model method needs an upsampler; connect "
                                 "KinemaUpscaleModelLoader to 'upscale_model' or choose another method.")
            if upscale_model.model.config.scale != factor:
                raise ValueError(f"KinemaLatentUpscale: {upscale_model.name} upscales x{upscale_model.model.config.scale}"
                                 f", not x{factor}; set scale to {upscale_model.model.config.scale} or load another.")
            latents = raw_to_model(raw, "KinemaLatentUpscale")  # upsamplers learn on normalised latents
            result = model_to_raw(upscale_model.model.upscale_video(latents), "KinemaLatentUpscale")
        else:
            raise ValueError(f"KinemaLatentUpscale: unknown method {method!r}; choose one of {', '.join(METHODS)}.")
        host.empty_cache()
        return ({"samples": result.cpu()},)


NODE_CLASS_MAPPINGS = {"KinemaUpscaleModelLoader": KinemaUpscaleModelLoader, "KinemaLatentUpscale": KinemaLatentUpscale}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaUpscaleModelLoader": "Kinema Latent Upscale Model Loader",
                              "KinemaLatentUpscale": "Kinema Latent Upscale"}
