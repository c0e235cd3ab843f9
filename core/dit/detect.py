"""Which layout a Wan DiT file uses, and a clear refusal when the file is not a Wan DiT at all.

Users pick files from folders full of look-alikes (VAE, text encoder, CLIP, LoRA), so the
commonest mistakes get a message that says what the file is and which loader takes it.
"""
from __future__ import annotations

import re
from typing import Iterable

from ..checkpoints.io import CheckpointError
from .layouts import COMFY, COMFY_PREFIX, DIFFUSERS, OFFICIAL, KeyLayout

_LORA = re.compile(r"(?:^|[._])(?:lora_(?:down|up|A|B)|lora\.(?:down|up))(?:[._]|$)|\.diff(?:_b)?$|\.alpha$")
_QUANT_MARKERS = (".scale_weight", ".weight_scale", "scaled_fp8", ".comfy_quant", ".scale_input", ".input_scale")


def choose_layout(keys: Iterable[str], source: str) -> KeyLayout:
    """The layout of a file's keys, or CheckpointError saying what the file is instead."""
    keys = list(keys)
    key_set = set(keys)
    _refuse_other_kinds(keys, key_set, source)
    if "scale_shift_table" in key_set and "proj_out.weight" in key_set:
        return DIFFUSERS
    stripped = {k[len(COMFY_PREFIX):] if k.startswith(COMFY_PREFIX) else k for k in keys}
    if "head.modulation" in stripped:
        comfy_only = any(k.startswith(COMFY_PREFIX) or k.endswith(_QUANT_MARKERS) for k in keys)
        return COMFY if comfy_only else OFFICIAL
    raise CheckpointError(
        f"{source}: no Wan DiT tensors found (expected 'head.modulation' or diffusers' 'scale_shift_table'; "
        f"first keys: {sorted(keys)[:5]}). Choose a Wan2.1/2.2 diffusion model file"
    )


def _refuse_other_kinds(keys: list[str], key_set: set[str], source: str) -> None:
    lora = next((k for k in keys if _LORA.search(k)), None)
    if lora is not None:
        raise CheckpointError(
            f"{source}: this is a LoRA (e.g. key {lora!r}), not a full diffusion model; load the base Wan model "
            f"here and apply the LoRA with the LoRA node"
        )
    if any(k.startswith(("decoder.", "first_stage_model.")) for k in keys) and not _has_dit_anchor(key_set):
        raise CheckpointError(f"{source}: this looks like a Wan VAE (encoder/decoder weights); use the VAE loader")
    text_markers = ("shared.weight", "token_embedding.weight", "encoder.final_layer_norm.weight")
    if any(k in key_set for k in text_markers) or any(".SelfAttention." in k or k.startswith("encoder.block.") for k in keys):
        raise CheckpointError(
            f"{source}: this looks like a text encoder (umT5/T5 weights); use the text encoder loader"
        )
    if any(k.startswith(("visual.", "vision_model.", "clip_vision.")) for k in keys):
        raise CheckpointError(f"{source}: this looks like a CLIP vision encoder; use the CLIP vision loader")


def _has_dit_anchor(key_set: set[str]) -> bool:
    return "head.modulation" in key_set or COMFY_PREFIX + "head.modulation" in key_set or "scale_shift_table" in key_set
