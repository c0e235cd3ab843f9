"""Wan 2.1 / 2.2 video VAEs: exact encode/decode, spatial tiling, streaming decode to video files."""
from .cache import CausalCache
from .config import WAN21, WAN22, VAEConfig
from .loader import load_vae
from .model import WanVAE
from .tiling import Tiling

__all__ = ["CausalCache", "Tiling", "VAEConfig", "WAN21", "WAN22", "WanVAE", "load_vae"]
