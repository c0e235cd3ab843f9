"""Long videos: context windows over latent time, FreeNoise, drift control, prompt schedules, streaming output."""
from .drift import ChannelStats, match_statistics
from .freenoise import freenoise
from .output import FrameTransform, centre_crop, chained, cropping, write_video
from .prompt_schedule import PromptSchedule, PromptSegment, parse_schedule
from .sampler import sample_long
from .settings import BLENDS, LongVideoSettings
from .windows import Window, blend_coefficients, plan_windows

__all__ = [
    "BLENDS", "ChannelStats", "FrameTransform", "LongVideoSettings", "PromptSchedule", "PromptSegment", "Window",
    "blend_coefficients", "centre_crop", "chained", "cropping", "freenoise", "match_statistics", "parse_schedule", "plan_windows",
    "sample_long", "write_video",
]
