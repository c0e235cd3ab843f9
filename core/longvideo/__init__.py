"""Long videos: context windows over latent time (sampled by core.sampling's one engine), FreeNoise, drift
control, prompt schedules, and the streaming output chain (decode -> frame-rate -> crop -> mp4)."""
from ..sampling.drift import ChannelStats, match_statistics
from ..sampling.freenoise import freenoise
from ..sampling.long_video import BLENDS, LongVideoSettings
from ..sampling.prompt_schedule import PromptSchedule, PromptSegment, parse_schedule
from ..sampling.windows import Window, blend_coefficients, plan_windows
from .output import FrameTransform, centre_crop, chained, cropping, write_video

__all__ = [
    "BLENDS", "ChannelStats", "FrameTransform", "LongVideoSettings", "PromptSchedule", "PromptSegment", "Window",
    "blend_coefficients", "centre_crop", "chained", "cropping", "freenoise", "match_statistics", "parse_schedule",
    "plan_windows", "write_video",
]
