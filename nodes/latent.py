"""An empty video latent of a size the model accepts, with aspect-ratio presets."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..core.sampling.shapes import PATCH  # the DiT folds PATCH x PATCH latent pixels into a token
from . import host
from .types import VAE, VAEModel

CUSTOM = "custom (width x height)"
# Ratio presets keep the pixel area of width x height and change its shape; fixed sizes are exact.
RATIO_PRESETS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1), "4:3": (4, 3), "3:4": (3, 4), "21:9": (21, 9)}
FIXED_PRESETS = {"1536x2688 (9:16 portrait)": (1536, 2688)}
ASPECT_CHOICES = [CUSTOM, *RATIO_PRESETS, *FIXED_PRESETS]


@dataclass(frozen=True)
class VideoSize:
    width: int
    height: int
    frames: int


def requested_size(aspect_ratio: str, width: int, height: int) -> tuple[float, float]:
    if aspect_ratio in FIXED_PRESETS:
        return FIXED_PRESETS[aspect_ratio]
    if aspect_ratio in RATIO_PRESETS:
        rw, rh = RATIO_PRESETS[aspect_ratio]
        scale = math.sqrt(width * height / (rw * rh))
        return rw * scale, rh * scale
    return width, height


def round_size(width: float, height: float, frames: int, pixel_multiple: int, temporal_stride: int) -> VideoSize:
    """Nearest size with sides a multiple of `pixel_multiple` and `temporal_stride * k + 1` frames."""

    def side(value: float) -> int:
        return max(pixel_multiple, int(round(value / pixel_multiple)) * pixel_multiple)

    k = max(0, int(round((frames - 1) / temporal_stride)))
    return VideoSize(side(width), side(height), temporal_stride * k + 1)


class KinemaEmptyLatent:
    DESCRIPTION = ("An empty latent video for KinemaSampler. Width, height and frame count are rounded to what "
                   "the model accepts; the 'info' output says what was changed.")
    CATEGORY = "Kinema/latent"
    RETURN_TYPES = ("LATENT", "INT", "INT", "INT", "STRING")
    RETURN_NAMES = ("latent", "width", "height", "frames", "info")
    OUTPUT_TOOLTIPS = (
        "Empty latent [1, C, T, H, W] sized for the VAE's model.",
        "Final width in pixels.",
        "Final height in pixels.",
        "Final number of frames.",
        "What was rounded, in words.",
    )
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE, {"tooltip": "The VAE of the model (its channels and downscale set the latent shape)."}),
                "aspect_ratio": (ASPECT_CHOICES, {"default": CUSTOM, "tooltip":
                    "custom uses width x height as given; a ratio keeps the area of width x height and takes "
                    "that shape; 1536x2688 is the fixed tall portrait size."}),
                "width": ("INT", {"default": 832, "min": 16, "max": 8192, "step": 16, "tooltip":
                    "Width in pixels; rounded to a multiple of 16 (Wan 2.1) or 32 (Wan 2.2 TI2V-5B)."}),
                "height": ("INT", {"default": 480, "min": 16, "max": 8192, "step": 16, "tooltip":
                    "Height in pixels; rounded like width."}),
                "frames": ("INT", {"default": 81, "min": 1, "max": 16385, "step": 4, "tooltip":
                    "Number of frames; rounded to 4k+1 (81 = 5 s at 16 fps). Ignored when seconds > 0."}),
                "seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 3600.0, "step": 0.1, "tooltip":
                    "Length in seconds at fps; 0 uses frames instead."}),
                "fps": ("INT", {"default": 16, "min": 1, "max": 120, "tooltip":
                    "Frame rate used to turn seconds into frames (16 for Wan 2.1, 24 for Wan 2.2 TI2V-5B)."}),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    def make(self, vae: VAEModel, aspect_ratio: str, width: int, height: int, frames: int, seconds: float,
             fps: int, unique_id=None):
        config = vae.model.config
        wanted_frames = int(round(seconds * fps)) if seconds > 0 else frames
        wanted_w, wanted_h = requested_size(aspect_ratio, width, height)
        size = round_size(wanted_w, wanted_h, wanted_frames, config.spatial_stride * PATCH, config.temporal_stride)
        latent = torch.zeros(
            1, config.z_dim, (size.frames - 1) // config.temporal_stride + 1,
            size.height // config.spatial_stride, size.width // config.spatial_stride,
        )  # [1, C, T, H, W]
        info = _describe(wanted_w, wanted_h, wanted_frames, size, fps, config.spatial_stride * PATCH)
        host.show_text(unique_id, info)
        return ({"samples": latent}, size.width, size.height, size.frames, info)


def _describe(wanted_w: float, wanted_h: float, wanted_frames: int, size: VideoSize, fps: int, multiple: int) -> str:
    notes = []
    if (round(wanted_w), round(wanted_h)) != (size.width, size.height):
        notes.append(f"size {wanted_w:.0f}x{wanted_h:.0f} -> {size.width}x{size.height} (sides multiple of {multiple})")
    if wanted_frames != size.frames:
        notes.append(f"frames {wanted_frames} -> {size.frames} (4k+1)")
    video = f"{size.width}x{size.height}, {size.frames} frames = {size.frames / fps:.2f} s at {fps} fps"
    return video + ("; " + "; ".join(notes) if notes else "")


NODE_CLASS_MAPPINGS = {"KinemaEmptyLatent": KinemaEmptyLatent}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaEmptyLatent": "Kinema Empty Latent Video"}
