"""Kinema: Kling-class video generation for ComfyUI (Wan 2.x DiT, streaming VAE, long video).

ComfyUI imports this file as a custom-node package; plain Python scripts use the public API
(`kinema.load_dit`, `kinema.load_text_encoder`, `kinema.load_vae`, `kinema.generate`), which is
imported lazily so that loading the node pack stays cheap.
"""
from __future__ import annotations

import importlib

_PUBLIC_API = {
    "load_dit": ".api",
    "load_text_encoder": ".api",
    "load_vae": ".api",
    "generate": ".api",
}


def __getattr__(name: str):
    if name in _PUBLIC_API:
        return getattr(importlib.import_module(_PUBLIC_API[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", *_PUBLIC_API]
