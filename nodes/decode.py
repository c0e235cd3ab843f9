"""Latent -> pixels: to a ComfyUI IMAGE batch, or streamed straight into an mp4."""
from __future__ import annotations

from functools import partial
from typing import Optional

from . import host
from .interpolate import RETIME, RetimeSettings
from .latent_space import raw_to_vae
from .types import VAE, VAEModel

FILENAME_PREFIX = "kinema/video"


def _latent_frames(samples: dict) -> int:
    return samples["samples"].shape[2]  # [B, C, T, H, W]


def _crop_size(vae: VAEModel, latents, crop_width: int, crop_height: int) -> tuple[int, int]:
    """(height, width) of the centre crop, checked before any decoding (0 keeps that side)."""
    stride = vae.model.config.spatial_stride
    height, width = latents.shape[3] * stride, latents.shape[4] * stride  # decoded frame size
    crop = (crop_height or height, crop_width or width)
    if crop[0] > height or crop[1] > width:
        raise ValueError(f"KinemaDecodeToVideo: cannot crop the {width}x{height} video to {crop[1]}x{crop[0]}; set "
                         f"crop_width <= {width} and crop_height <= {height} (0 keeps a side).")
    return crop


def _decode_images(vae: VAEModel, latents, samples: dict, progress):
    """IMAGE frames of the latents; a long Animate LATENT is decoded clip by clip (core.sampling.segments)."""
    chain = samples.get("kinema_clips")
    if chain is None:
        return vae.model.decode_to_images(latents, progress=progress)
    return chain.decode_to_images(vae.model, latents, progress)


class KinemaVAEDecode:
    DESCRIPTION = ("Decodes a latent video into an IMAGE batch (one image per frame) for other nodes. For long "
                   "videos prefer KinemaDecodeToVideo, which never holds all frames in memory.")
    CATEGORY = "Kinema/decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Frames [N, H, W, 3] in 0..1 (batches of several videos follow one another).",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE, {"tooltip": "The VAE matching the model that made the latent."}),
                "samples": ("LATENT", {"tooltip": "Latent video [B, C, T, H, W] from KinemaSampler, or any Wan "
                                                  "LATENT (raw VAE latents, e.g. from native VAEEncode)."}),
            }
        }

    def decode(self, vae: VAEModel, samples: dict):
        with host.progress("VAE decode", _latent_frames(samples)) as progress:
            latents = raw_to_vae(vae.model, samples["samples"], "KinemaVAEDecode")  # [B, C, T, H, W]
            images = _decode_images(vae, latents, samples, progress)  # [N, H, W, 3]
        host.empty_cache()
        return (images,)


class KinemaDecodeToVideo:
    DESCRIPTION = ("Decodes a latent video chunk by chunk straight into an H.264 mp4 in the output folder, so "
                   "minutes of video never sit in memory as images. Shows the video on the node.")
    CATEGORY = "Kinema/decode"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Full path of the written mp4.",)
    OUTPUT_NODE = True
    FUNCTION = "decode"
    REQUIRES = ("av",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE, {"tooltip": "The VAE matching the model that made the latent."}),
                "samples": ("LATENT", {"tooltip": "Latent video [1, C, T, H, W] from KinemaSampler, or any Wan "
                                                  "LATENT."}),
                "fps": ("INT", {"default": 16, "min": 1, "max": 120, "tooltip":
                    "Frame rate of the file (Wan 2.1: 16, Wan 2.2 TI2V-5B: 24)."}),
                "filename_prefix": ("STRING", {"default": FILENAME_PREFIX, "tooltip":
                    "Name of the file inside the output folder; a counter is appended and nothing is overwritten. "
                    "May contain subfolders."}),
            },
            "optional": {
                "retime": (RETIME, {"tooltip": "From KinemaRetimeSettings: converts the frame rate (e.g. 16 -> 30 "
                                               "fps) while streaming; fps above is then the rate of the latent."}),
                "crop_width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 2, "tooltip":
                    "Centre-crop the frames to this width before writing (0 = keep the width)."}),
                "crop_height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 2, "tooltip":
                    "Centre-crop to this height (0 = keep): 1080 for 1920x1088 renders."}),
            },
        }

    def decode(self, vae: VAEModel, samples: dict, fps: int, filename_prefix: str,
               retime: Optional[RetimeSettings] = None, crop_width: int = 0, crop_height: int = 0):
        latents = raw_to_vae(vae.model, samples["samples"], "KinemaDecodeToVideo")  # [B, C, T, H, W]
        if latents.shape[0] != 1:
            raise ValueError(f"KinemaDecodeToVideo writes one video per file but got a batch of {latents.shape[0]} "
                             "latents; decode them one at a time (or use KinemaVAEDecode + KinemaSaveVideo).")
        target = host.new_output_file(filename_prefix, "mp4")
        file_fps, transform = fps, None
        if retime is not None:
            from ..core.interp import frame_rate_converter

            file_fps, transform = retime.fps_out, frame_rate_converter(fps, retime.fps_out, retime.method)
        if crop_width or crop_height:
            from ..core.longvideo import chained, cropping

            transform = chained(transform, cropping(_crop_size(vae, latents, crop_width, crop_height)))
        with host.progress("VAE decode to mp4", _latent_frames(samples)) as progress:
            chain = samples.get("kinema_clips")  # long Animate: clips decoded one by one (core.sampling.segments)
            write = vae.model.decode_to_file if chain is None else partial(chain.write_video, vae.model)
            write(latents, target.path, fps=file_fps, progress=progress, frame_transform=transform)
        host.empty_cache()
        return {"ui": {"images": [target.ui()], "animated": (True,)}, "result": (str(target.path),)}


NODE_CLASS_MAPPINGS = {"KinemaVAEDecode": KinemaVAEDecode, "KinemaDecodeToVideo": KinemaDecodeToVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaVAEDecode": "Kinema VAE Decode", "KinemaDecodeToVideo": "Kinema Decode To Video"}
