"""The Wan diffusion transformer (plus VACE and Animate): model, config inferred from checkpoints, key layouts, loader."""
from .animate import WanAnimate
from .config import DiTConfig
from .context import PreparedContext
from .loader import load_dit
from .model import WanDiT
from .streaming import BlockStreaming, stream_blocks, streamer_of
from .vace import WanVACE

__all__ = ["BlockStreaming", "DiTConfig", "PreparedContext", "WanAnimate", "WanDiT", "WanVACE", "load_dit",
           "stream_blocks", "streamer_of"]
