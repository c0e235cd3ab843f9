"""load_clip_vision: any ViT-H/14 CLIP vision file users have -> a ready ClipVisionEncoder.

Accepted: ComfyUI's clip_vision_h.safetensors, Wan's official
models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth, open_clip checkpoints and transformers
CLIPVisionModel(WithProjection) / CLIPModel files or folders.
"""
from __future__ import annotations

import os
import re
from typing import Optional

import torch

from ..checkpoints.io import CheckpointError, read_config_json, read_state_dict
from .config import ClipVisionConfig
from .encoder import ClipVisionEncoder
from .layouts import to_canonical
from .tower import ClipVisionTower

# Tensors the penultimate output never reads: the last block, the post-norm and the projection head.
_UNREAD = re.compile(r"post_norm\..*|head")


def load_clip_vision(path: str | os.PathLike, dtype: Optional[torch.dtype] = None,
                     device: str | torch.device = "cpu") -> ClipVisionEncoder:
    """`dtype`: the compute dtype (default fp32 on CPU, fp16 on CUDA as Wan runs it). Weights wider than it
    are narrowed; narrower ones (fp16 files on a fp32 run) keep their storage and are upcast per layer."""
    device = torch.device(device)
    compute_dtype = dtype or (torch.float16 if device.type == "cuda" else torch.float32)
    state = read_state_dict(path, subfolder_hints=("image_encoder",))
    canonical = to_canonical(dict(state.tensors), state.source)
    config = ClipVisionConfig.from_state_dict(canonical, state.source, heads=_heads_from_config(path))
    last = f"transformer.{config.layers - 1}."
    used = {k: _storage(v, compute_dtype) for k, v in canonical.items()
            if not (_UNREAD.fullmatch(k) or k.startswith(last))}
    with torch.device("meta"):
        tower = ClipVisionTower(config, compute_dtype)
    tower.requires_grad_(False).eval()
    try:
        result = tower.load_state_dict(used, strict=False, assign=True)
    except RuntimeError as err:  # shape mismatches
        details = " ".join(str(err).split())
        raise CheckpointError(f"{state.source}: tensor shapes do not fit a CLIP vision tower ({config}): "
                              f"{details}") from err
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(f"{state.source}: incomplete CLIP vision tower: missing {result.missing_keys[:5]}, "
                              f"unexpected {result.unexpected_keys[:5]}; the file may be truncated, download it again")
    return ClipVisionEncoder(tower.to(device))


def _heads_from_config(path) -> Optional[int]:
    """`num_attention_heads` of a transformers config.json beside the weights (CLIPVisionConfig, or CLIPConfig's
    vision_config), else None."""
    config = read_config_json(path) or {}
    config = config.get("vision_config", config)
    heads = config.get("num_attention_heads") if isinstance(config, dict) else None
    return heads if isinstance(heads, int) and heads > 0 else None


def _storage(t: torch.Tensor, compute_dtype: torch.dtype) -> torch.Tensor:
    if t.is_floating_point() and t.element_size() > compute_dtype.itemsize:
        return t.to(compute_dtype)
    return t
