"""Prompt -> umT5 embeddings, cached by prompt so re-runs and seed sweeps skip the encoder."""
from __future__ import annotations

from collections import OrderedDict

import torch

from ..core.sampling.guidance import WAN_NEGATIVE_PROMPT
from . import host
from .conditioning_bridge import encode_with_native_clip
from .types import CONDITIONING, TEXT_ENCODER, Conditioning, TextEncoderModel

CACHE_SIZE = 64  # prompts; one umT5 embedding is at most 512 x 4096 floats (8 MB)


class EmbeddingCache:
    """Least-recently-used embeddings keyed by (encoder file, dtype, prompt)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def get(self, key: tuple):
        if key in self._items:
            self._items.move_to_end(key)
        return self._items.get(key)

    def put(self, key: tuple, value: torch.Tensor) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


_cache = EmbeddingCache(CACHE_SIZE)


class KinemaTextEncode:
    DESCRIPTION = "Encodes the prompt and the negative prompt with umT5 for KinemaSampler."
    CATEGORY = "Kinema/conditioning"
    RETURN_TYPES = (CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = ("Prompt and negative-prompt embeddings.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder": (f"{TEXT_ENCODER},CLIP", {"tooltip": "From KinemaTextEncoderLoader, or a native "
                                 "CLIP holding umT5 (CLIPLoader, type 'wan')."}),
                "prompt": ("STRING", {"multiline": True, "default": "", "tooltip":
                    "What the video shows: subject, action, scene, camera, style."}),
                "negative_prompt": ("STRING", {"multiline": True, "default": WAN_NEGATIVE_PROMPT, "tooltip":
                    "What to steer away from (used by classifier-free guidance when cfg > 1). The default is "
                    "the official Wan negative prompt (Chinese, as the models were trained with it)."}),
                "unload_encoder": ("BOOLEAN", {"default": True, "tooltip":
                    "Free the encoder's memory after encoding (it is read again from disk if a new prompt "
                    "needs it). Prompts already encoded are cached either way."}),
            }
        }

    def encode(self, text_encoder: TextEncoderModel, prompt: str, negative_prompt: str, unload_encoder: bool):
        if not isinstance(text_encoder, TextEncoderModel):  # a native CLIP: ComfyUI caches its outputs itself
            positive, negative = encode_with_native_clip(text_encoder, [prompt, negative_prompt])
            return (Conditioning(positive, negative, prompt, negative_prompt),)
        keys = [(text_encoder.path, str(text_encoder.dtype), text) for text in (prompt, negative_prompt)]
        missing = [key for key in keys if _cache.get(key) is None]
        if missing:
            encoded = text_encoder.slot.get().encode([key[2] for key in missing])  # list of [L_i, d]
            for key, embedding in zip(missing, encoded):
                _cache.put(key, embedding.detach().float().cpu())
        positive, negative = (_cache.get(key) for key in keys)
        if unload_encoder and text_encoder.slot.loaded:
            text_encoder.slot.unload()
            host.empty_cache()
        return (Conditioning(positive, negative, prompt, negative_prompt),)


NODE_CLASS_MAPPINGS = {"KinemaTextEncode": KinemaTextEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaTextEncode": "Kinema Text Encode"}
