"""Kinema: Kling-class video generation for ComfyUI (Wan 2.x DiT, streaming VAE, long video).

ComfyUI imports this file as a custom-node package; plain Python scripts use the public API
(`kinema.load_dit`, `kinema.load_text_encoder`, `kinema.load_vae`, `kinema.generate`), which is
imported lazily so that loading the node pack stays cheap.
"""
from __future__ import annotations

import importlib

_PUBLIC_API = {name: ".api" for name in (
    "load_dit", "load_text_encoder", "load_vae", "generate", "sample", "run_sampling", "SamplingRequest",
    "SamplerSettings", "LongVideoSettings", "PromptSchedule", "parse_schedule", "StepCacheSettings",
    "ImageConditioning", "BranchConditioning", "animate_long", "BlockStreaming", "load_clip_vision",
)}


# ComfyUI reads these right after importing the package (`hasattr` reaches `__getattr__`), so
# scripts that only use the core never import the node layer. nodes/ leaves out, with a logged
# reason, any node whose optional dependency is missing; the pack itself always loads.
_NODE_MAPPINGS = {
    "NODE_CLASS_MAPPINGS": ".nodes",
    "NODE_DISPLAY_NAME_MAPPINGS": ".nodes",
}


def __getattr__(name: str):
    if name in _PUBLIC_API:
        return getattr(importlib.import_module(_PUBLIC_API[name], __name__), name)
    if name in _NODE_MAPPINGS:
        return getattr(importlib.import_module(_NODE_MAPPINGS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", *_PUBLIC_API]
