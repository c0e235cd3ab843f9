"""Kinema's public Python API (stable: outside scripts and every other layer use it).

    import kinema
    dit = kinema.load_dit("wan2.1_t2v_1.3B_fp16.safetensors")
    te = kinema.load_text_encoder("umt5_xxl_fp8_e4m3fn_scaled.safetensors")
    vae = kinema.load_vae("wan_2.1_vae.safetensors")
    latents = kinema.generate(dit, te, "a cat surfing", width=832, height=480, frames=33)
    vae.decode_to_file(latents, "cat.mp4", fps=16)

Every sampling call builds one `SamplingRequest` and runs it with `run_sampling`; `generate` (prompt in)
and `sample` (encoded conditioning in) are its short forms, with long video (`LongVideoSettings`, a
`PromptSchedule`), the step cache (`StepCacheSettings`), start images and VACE/Animate branches.
"""
from __future__ import annotations

from typing import Optional

from .core.dit import WanDiT
from .core.dit import load_dit as _load_dit
from .core.dit.streaming import BlockStreaming, load_streamed_dit
from .core.cache import StepCacheSettings
from .core.clip_vision import load_clip_vision
from .core.sampling import (BranchConditioning, ImageConditioning, SamplerSettings, SamplingRequest, generate,
                            run_sampling, sample)
from .core.sampling.long_video import LongVideoSettings
from .core.sampling.prompt_schedule import PromptSchedule, parse_schedule
from .core.sampling.segments import animate_long
from .core.text import load_text_encoder
from .core.vae import load_vae

__all__ = [
    "BlockStreaming", "BranchConditioning", "ImageConditioning", "LongVideoSettings", "PromptSchedule",
    "SamplerSettings", "SamplingRequest", "StepCacheSettings", "animate_long", "generate", "load_clip_vision",
    "load_dit", "load_text_encoder", "load_vae", "parse_schedule", "run_sampling", "sample",
]


def load_dit(path, *args, compile: bool = False, streaming: Optional[BlockStreaming] = None, **options) -> WanDiT:
    """`kinema.core.dit.load_dit` (same arguments: dtype, device, attention, compute_dtype, ...);
    `compile=True` also runs the transformer blocks through torch.compile (`dit.compile_blocks()`:
    compiled on the first call of each latent size, then reused by every block).
    `streaming=BlockStreaming(blocks_on_device=20)` (or `device_budget=<bytes>`) keeps only that many
    transformer blocks on `device` and copies the others in as they run, from pinned CPU memory or
    the memory-mapped file; the plan is logged in one line."""
    if streaming is None:
        dit = _load_dit(path, *args, **options)
    else:
        dit = load_streamed_dit(path, streaming, *args, **options)
    return dit.compile_blocks() if compile else dit
