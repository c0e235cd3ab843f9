"""Frame interpolation and streaming frame-rate conversion (16/24 fps -> 30 fps and any other ratio)."""
from .methods import DEFAULT_METHOD, METHODS, Interpolator, get_interpolator
from .retime import FrameRates, FrameTransform, frame_rate_converter, retime

__all__ = ["DEFAULT_METHOD", "METHODS", "FrameRates", "FrameTransform", "Interpolator", "frame_rate_converter",
           "get_interpolator", "retime"]
