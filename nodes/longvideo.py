"""Long-video settings for KinemaSampler (context windows over time) and prompt schedules."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..core.longvideo import BLENDS
from ..core.sampling.shapes import TEMPORAL_STRIDE  # video frames per latent frame
from .types import TEXT_ENCODER, TextEncoderModel

LONG_VIDEO = "KINEMA_LONG_VIDEO"  # socket type: carries a LongVideo
PROMPT_SCHEDULE = "KINEMA_PROMPT_SCHEDULE"  # socket type: carries an encoded core.longvideo.PromptSchedule


@dataclass(frozen=True)
class LongVideo:
    settings: Any  # core.longvideo.LongVideoSettings
    prompts: Optional[Any] = None  # encoded core.longvideo.PromptSchedule; None = the sampler's conditioning
    animate_overlap: int = 1  # Wan-Animate clips: frames each clip continues from the one before (refert_num)


class KinemaLongVideoSettings:
    DESCRIPTION = ("Makes KinemaSampler generate videos of any length: the latent is cut into overlapping windows "
                   "of the length the model was trained on, each step denoises every window and blends them. "
                   "Cost and memory per frame stay the same however long the video is.")
    CATEGORY = "Kinema/sampling"
    RETURN_TYPES = (LONG_VIDEO,)
    RETURN_NAMES = ("long_video",)
    OUTPUT_TOOLTIPS = ("Connect to KinemaSampler's long_video input.",)
    FUNCTION = "settings"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "window_frames": ("INT", {"default": 81, "min": 5, "max": 1025, "step": TEMPORAL_STRIDE, "tooltip":
                    "Video frames per window (4k+1): what the model was trained on (Wan 81, TI2V-5B 121, demo 17)."}),
                "overlap_frames": ("INT", {"default": 28, "min": 4, "max": 1024, "step": TEMPORAL_STRIDE, "tooltip":
                    "Video frames shared by neighbouring windows (a multiple of 4); about a third of the window."}),
                "blend": (list(BLENDS), {"default": "pyramid", "tooltip":
                    "How overlapping windows are mixed: pyramid (trust window centres), linear (ramps across the "
                    "overlap only), flat (plain average)."}),
                "freenoise": ("BOOLEAN", {"default": True, "tooltip":
                    "Start every window from a shuffle of the same noise frames (FreeNoise): steadier content "
                    "across the whole video."}),
                "drift_strength": ("FLOAT", {"default": 0.2, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                    "Pull each window's colour/contrast statistics towards the first window of its prompt "
                    "(0 = off; 0.1-0.3 keeps long videos from drifting)."}),
            },
            "optional": {
                "prompt_schedule": (PROMPT_SCHEDULE, {"tooltip":
                    "From KinemaPromptSchedule: different prompts for different times (replaces the sampler's "
                    "positive prompt; its negative prompt is still used)."}),
                "animate_overlap_frames": ("INT", {"default": 1, "min": 1, "max": 40, "tooltip":
                    "Wan2.2 Animate only (a KinemaAnimateConditioning branch): the video is made in clips of the "
                    "conditioning's frames (77), each continuing from the last frames of the one before, as the "
                    "official release; this many frames (refert_num: 1 or 5 as released) are shared. Window, "
                    "overlap, blend, freenoise and drift are for other models."}),
            },
        }

    def settings(self, window_frames: int, overlap_frames: int, blend: str, freenoise: bool,
                 drift_strength: float, prompt_schedule=None, animate_overlap_frames: int = 1):
        from ..core.longvideo import LongVideoSettings

        if (window_frames - 1) % TEMPORAL_STRIDE or overlap_frames % TEMPORAL_STRIDE:
            raise ValueError(f"KinemaLongVideoSettings: window_frames must be {TEMPORAL_STRIDE}k+1 and overlap_frames "
                             f"a multiple of {TEMPORAL_STRIDE}; got {window_frames} and {overlap_frames} (e.g. 81 and 28).")
        settings = LongVideoSettings(window=(window_frames - 1) // TEMPORAL_STRIDE + 1,
                                     overlap=overlap_frames // TEMPORAL_STRIDE, blend=blend, freenoise=freenoise,
                                     drift_strength=drift_strength)
        return (LongVideo(settings, prompt_schedule, animate_overlap_frames),)


class KinemaPromptSchedule:
    DESCRIPTION = ("Different prompts for different stretches of a long video, one line each: "
                   "'<start seconds>: <prompt>'. Each prompt holds until the next line's time.")
    CATEGORY = "Kinema/conditioning"
    RETURN_TYPES = (PROMPT_SCHEDULE,)
    RETURN_NAMES = ("prompt_schedule",)
    OUTPUT_TOOLTIPS = ("Connect to KinemaLongVideoSettings' prompt_schedule input.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (TEXT_ENCODER, {"tooltip": "From KinemaTextEncoderLoader."}),
                "schedule": ("STRING", {"multiline": True, "default":
                    "0: a red ball rolls to the right on a grey floor\n"
                    "10: the red ball bounces against a wall\n", "tooltip":
                    "One '<start seconds>: <prompt>' per line, starting at 0; # starts a comment line."}),
                "fps": ("INT", {"default": 16, "min": 1, "max": 120, "tooltip":
                    "Frame rate the video is generated at (before any frame interpolation): Wan 16, TI2V-5B 24."}),
            }
        }

    def encode(self, text_encoder: TextEncoderModel, schedule: str, fps: int):
        from ..core.longvideo import parse_schedule

        parsed = parse_schedule(schedule, fps)
        encoded = text_encoder.slot.get().encode([s.prompt for s in parsed.segments])  # list of [L_i, d]
        return (parsed.encoded([e.detach().float().cpu() for e in encoded]),)


NODE_CLASS_MAPPINGS = {"KinemaLongVideoSettings": KinemaLongVideoSettings, "KinemaPromptSchedule": KinemaPromptSchedule}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaLongVideoSettings": "Kinema Long Video Settings",
                              "KinemaPromptSchedule": "Kinema Prompt Schedule"}
