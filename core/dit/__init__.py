"""The Wan diffusion transformer (plus VACE and Animate): model, config inferred from checkpoints, key layouts, loader."""
from .animate import WanAnimate
from .config import DiTConfig
from .loader import load_dit
from .model import WanDiT
from .vace import WanVACE

__all__ = ["DiTConfig", "WanAnimate", "WanDiT", "WanVACE", "load_dit"]
