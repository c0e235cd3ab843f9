"""Kinema's public Python API (stable: outside scripts and every other layer use it).

    import kinema
    dit = kinema.load_dit("wan2.1_t2v_1.3B_fp16.safetensors")
    te = kinema.load_text_encoder("umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    vae = kinema.load_vae("wan_2.1_vae.safetensors")
    latents = kinema.generate(dit, te, "a cat surfing", width=832, height=480, frames=33)
    vae.decode_to_file(latents, "cat.mp4", fps=16)
"""
from __future__ import annotations

from .core.dit import WanDiT
from .core.dit import load_dit as _load_dit
from .core.sampling import SamplerSettings, generate, sample
from .core.text import load_text_encoder
from .core.vae import load_vae

__all__ = ["SamplerSettings", "generate", "load_dit", "load_text_encoder", "load_vae", "sample"]


def load_dit(path, *args, compile: bool = False, **options) -> WanDiT:
    """`kinema.core.dit.load_dit` (same arguments: dtype, device, attention, compute_dtype, ...);
    `compile=True` also runs the transformer blocks through torch.compile (`dit.compile_blocks()`:
    compiled on the first call of each latent size, then reused by every block)."""
    dit = _load_dit(path, *args, **options)
    return dit.compile_blocks() if compile else dit
