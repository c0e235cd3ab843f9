"""Native ComfyUI CONDITIONING <-> Kinema conditioning, and prompts encoded by a native umT5 CLIP.

A native Wan CONDITIONING is a list of [embedding [1, 512, 4096], options]: ComfyUI's umT5 tokenizer pads every
prompt to 512 tokens and zeroes the padded rows' outputs. Kinema's conditioning keeps only the prompt's rows
[L, d] (its DiT zero-pads to 512 itself), so the bridge drops the all-zero tail one way and pads it back the
other: both give the DiT the same 512 rows.
"""
from __future__ import annotations

import torch

from ..core.text.tokenizer import MAX_LENGTH  # rows of a padded native Wan embedding
from .types import CONDITIONING, Conditioning

NATIVE = "CONDITIONING"
FROM_NATIVE = "(native conditioning)"  # stands for the prompt text, which native CONDITIONING does not carry


def embedding_from_native(conditioning, what: str) -> torch.Tensor:
    """Native CONDITIONING (one entry, batch 1) -> float32 CPU rows [L, d] without the zero padding."""
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise ValueError(f"{what}: expected a native CONDITIONING (from CLIPTextEncode); got {type(conditioning).__name__}")
    if len(conditioning) != 1:
        raise ValueError(f"{what}: this CONDITIONING holds {len(conditioning)} entries (combined or concatenated "
                         "prompts); Kinema takes one prompt per input: connect a single CLIPTextEncode.")
    embedding = conditioning[0][0]  # [1, L, d]
    if embedding.dim() != 3 or embedding.shape[0] != 1:
        raise ValueError(f"{what}: expected an embedding [1, tokens, width]; got {tuple(embedding.shape)}")
    return trim_padding(embedding[0].detach().float().cpu())


def trim_padding(rows: torch.Tensor) -> torch.Tensor:
    """[L, d] -> the rows up to the last non-zero one (ComfyUI zeroes the outputs of padding tokens)."""
    used = rows.abs().amax(dim=1) > 0  # [L]
    if not used.any():
        raise ValueError("the text embedding is all zeros: was the text encoder loaded?")
    return rows[: int(used.nonzero().max()) + 1]


def embedding_to_native(rows: torch.Tensor) -> list:
    """Kinema rows [L, d] -> native CONDITIONING [[embedding [1, 512, d], {}]], zero-padded as ComfyUI pads."""
    padded = torch.zeros(1, max(MAX_LENGTH, rows.shape[0]), rows.shape[1], dtype=rows.dtype)
    padded[0, : rows.shape[0]] = rows
    return [[padded, {}]]


def encode_with_native_clip(clip, texts: list[str]) -> list[torch.Tensor]:
    """Prompts through a native CLIP (CLIPLoader type 'wan', umT5) -> rows [L, d] each, float32 on the CPU."""
    out = []
    for text in texts:
        embedding = clip.encode_from_tokens(clip.tokenize(text))  # [1, 512, d], padding rows zero
        out.append(trim_padding(embedding[0].detach().float().cpu()))
    return out


class KinemaConditioningFromNative:
    DESCRIPTION = ("Native CONDITIONING (CLIPTextEncode with a Wan umT5 from CLIPLoader, type 'wan') -> Kinema "
                   "conditioning for KinemaSampler.")
    CATEGORY = "Kinema/conditioning"
    RETURN_TYPES = (CONDITIONING,)
    RETURN_NAMES = ("conditioning",)
    OUTPUT_TOOLTIPS = ("Prompt and negative-prompt embeddings for KinemaSampler.",)
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": (NATIVE, {"tooltip": "From CLIPTextEncode with the prompt (a Wan umT5 CLIP)."}),
            "negative": (NATIVE, {"tooltip": "From CLIPTextEncode with the negative prompt (may be empty text)."}),
        }}

    def convert(self, positive, negative):
        return (Conditioning(embedding_from_native(positive, "KinemaConditioningFromNative positive"),
                             embedding_from_native(negative, "KinemaConditioningFromNative negative"),
                             FROM_NATIVE, FROM_NATIVE),)


class KinemaConditioningToNative:
    DESCRIPTION = "Kinema conditioning -> native CONDITIONING (positive and negative) for native Wan samplers."
    CATEGORY = "Kinema/conditioning"
    RETURN_TYPES = (NATIVE, NATIVE)
    RETURN_NAMES = ("positive", "negative")
    OUTPUT_TOOLTIPS = ("The prompt, padded to 512 tokens as native CLIPTextEncode gives it.",
                       "The negative prompt, likewise.")
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"conditioning": (CONDITIONING, {"tooltip": "From KinemaTextEncode."})}}

    def convert(self, conditioning: Conditioning):
        return embedding_to_native(conditioning.positive), embedding_to_native(conditioning.negative)


NODE_CLASS_MAPPINGS = {"KinemaConditioningFromNative": KinemaConditioningFromNative,
                       "KinemaConditioningToNative": KinemaConditioningToNative}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaConditioningFromNative": "Kinema Conditioning From Native",
                              "KinemaConditioningToNative": "Kinema Conditioning To Native"}
