"""Frame-rate conversion: an IMAGE batch to a new fps, and retime settings for KinemaDecodeToVideo."""
from __future__ import annotations

from dataclasses import dataclass

from ..core.interp.methods import DEFAULT_METHOD
from ..core.interp.methods import METHODS as INTERPOLATORS
from . import host

RETIME = "KINEMA_RETIME"  # socket type name: a public API
# core.interp's methods, its default first (the widget's order)
METHODS = (DEFAULT_METHOD, *sorted(m for m in INTERPOLATORS if m != DEFAULT_METHOD))
METHOD_TOOLTIP = ("dis_flow: motion-compensated in-betweens from OpenCV DIS optical flow (needs opencv-python-"
                  "headless, no weights). blend: cross-fade, ghosts on motion.")


@dataclass(frozen=True)
class RetimeSettings:
    fps_out: float
    method: str


def _fps_input(default: float, tooltip: str):
    return ("FLOAT", {"default": default, "min": 1.0, "max": 240.0, "step": 0.001, "tooltip": tooltip})


class KinemaFrameRate:
    DESCRIPTION = ("Converts an IMAGE batch to another frame rate at any ratio (16 -> 30, 24 -> 30 ...), "
                   "interpolating in-between frames. Holds input and output in memory: for long videos use "
                   "KinemaRetimeSettings on KinemaDecodeToVideo, which streams.")
    CATEGORY = "Kinema/video"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("Frames at fps_out: floor((N - 1) * fps_out / fps_in) + 1 of them for N input frames.",)
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Frames [N, H, W, 3] in 0..1 of one video, in order."}),
                "fps_in": _fps_input(16.0, "Frame rate of the input (Wan 2.1/2.2 14B: 16, TI2V-5B: 24)."),
                "fps_out": _fps_input(30.0, "Frame rate wanted."),
                "method": (list(METHODS), {"default": METHODS[0], "tooltip": METHOD_TOOLTIP}),
            }
        }

    def convert(self, images, fps_in: float, fps_out: float, method: str):
        import torch

        from ..core.interp import FrameRates, frame_rate_converter

        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"KinemaFrameRate needs RGB frames [N, H, W, 3], got shape {tuple(images.shape)}; "
                             "connect an IMAGE output (an alpha channel must be removed first).")
        convert = frame_rate_converter(fps_in, fps_out, method)
        total = FrameRates.of(fps_in, fps_out).output_count(images.shape[0])
        out, done = [], 0
        with host.progress("frame rate", total) as progress:
            for chunk in convert(images[i:i + 1] for i in range(images.shape[0])):  # [m, H, W, 3]
                out.append(chunk)
                done += chunk.shape[0]
                progress.step(done, total)
        return (torch.cat(out),)


class KinemaRetimeSettings:
    DESCRIPTION = ("Frame-rate conversion for KinemaDecodeToVideo: frames are interpolated while they stream "
                   "from the decoder into the mp4, so minutes of 30 fps video never sit in memory.")
    CATEGORY = "Kinema/video"
    RETURN_TYPES = (RETIME,)
    RETURN_NAMES = ("retime",)
    OUTPUT_TOOLTIPS = ("Connect to the retime input of KinemaDecodeToVideo (its fps is then the input rate).",)
    FUNCTION = "settings"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "fps_out": _fps_input(30.0, "Frame rate of the written file."),
                "method": (list(METHODS), {"default": METHODS[0], "tooltip": METHOD_TOOLTIP}),
            }
        }

    def settings(self, fps_out: float, method: str):
        from ..core.interp import get_interpolator

        get_interpolator(method)  # a missing OpenCV is reported here, before any sampling or decoding
        return (RetimeSettings(fps_out, method),)


NODE_CLASS_MAPPINGS = {"KinemaFrameRate": KinemaFrameRate, "KinemaRetimeSettings": KinemaRetimeSettings}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaFrameRate": "Kinema Frame Rate", "KinemaRetimeSettings": "Kinema Retime Settings"}
