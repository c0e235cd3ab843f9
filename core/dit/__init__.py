"""The Wan diffusion transformer: model, config inferred from checkpoints, key layouts, loader."""
from .config import DiTConfig
from .loader import load_dit
from .model import WanDiT

__all__ = ["DiTConfig", "WanDiT", "load_dit"]
