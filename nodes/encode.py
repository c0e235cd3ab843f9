"""Pixels -> latent: an IMAGE batch (one image per frame) into a raw Wan LATENT, as native VAEEncode gives."""
from __future__ import annotations

from . import host
from .latent_space import vae_to_raw
from .types import VAE, VAEModel


class KinemaVAEEncode:
    DESCRIPTION = ("Encodes frames into a latent video for KinemaSampler with denoise < 1 (video-to-video) or for "
                   "any node that takes a Wan LATENT. Gives the same raw latents as native VAEEncode.")
    CATEGORY = "Kinema/latent"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("Latent video [1, C, T, H, W] (raw VAE latents, as native ComfyUI).",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE, {"tooltip": "The VAE of the model that will sample the latent."}),
                "images": ("IMAGE", {"tooltip": "The video's frames [N, H, W, 3] in 0..1: N = 4k+1 frames (81, 33, "
                                                "...), sides a multiple of 8 (Wan 2.1) or 16 (Wan 2.2 TI2V-5B)."}),
            }
        }

    def encode(self, vae: VAEModel, images):
        frames = images.shape[0]
        video = images[..., :3].permute(3, 0, 1, 2).unsqueeze(0).float() * 2 - 1  # [1, 3, N, H, W] in [-1, 1]
        try:
            with host.progress("VAE encode", vae.model.config.latent_frames(frames)) as progress:
                latents = vae.model.encode(video, progress=progress)  # [1, C, T, H, W], normalised
        except ValueError as error:
            raise ValueError(f"KinemaVAEEncode: {error}") from None
        host.empty_cache()
        return ({"samples": vae_to_raw(vae.model, latents.cpu(), "KinemaVAEEncode")},)


NODE_CLASS_MAPPINGS = {"KinemaVAEEncode": KinemaVAEEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaVAEEncode": "Kinema VAE Encode"}
