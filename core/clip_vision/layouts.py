"""CLIP vision checkpoint key layouts mapped onto canonical names: those of the visual tower in Wan's
official `models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth`, without the `visual.` prefix.

Three families of files hold the same ViT-H/14 tower:
- Wan's official .pth (`visual.*`, plus the text tower `textual.*` and `log_scale`, not used);
- open_clip's own names (`visual.conv1`, `visual.transformer.resblocks.N.attn.in_proj_weight`, ...);
- transformers' CLIPVisionModel(WithProjection) names (`vision_model.*`, `visual_projection`), also
  used by ComfyUI's clip_vision_h.safetensors and by full CLIPModel files (`text_model.*` dropped).
Each is a table of anchored rules for the renaming engine; a key no rule explains is an error.
"""
from __future__ import annotations

import re

import torch

from ..checkpoints.io import CheckpointError
from ..checkpoints.renaming import KeyLayout, compose, dropped, identity, under_prefix

_EXPECTED_FILES = (
    "Wan needs the ViT-H/14 CLIP vision encoder: clip_vision_h.safetensors (ComfyUI models/clip_vision) or "
    "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (official Wan-AI I2V repos)"
)
_HINT = f"The file may be another model. {_EXPECTED_FILES}"
_PARAM = (r"weight|bias", r"\g<0>")

# Canonical module names (with their parameter spellings): the targets every layout renames onto.
_CANONICAL = (
    r"patch_embedding\.weight", r"cls_embedding", r"pos_embedding", r"(pre_norm|post_norm)\.(weight|bias)",
    r"transformer\.\d+\.(norm1|norm2|attn\.to_qkv|attn\.proj|mlp\.0|mlp\.2)\.(weight|bias)", r"head",
)

# Wan's official names behind `visual.`; its text tower is never used for images.
OFFICIAL = KeyLayout("official Wan CLIP", (
    *under_prefix(r"visual\.", identity(_CANONICAL)),
    *dropped((r"textual\..*", r"log_scale")),
), targets=_CANONICAL, hint=_HINT)

_OPEN_CLIP_BLOCK = (
    (r"ln_1", "norm1"), (r"ln_2", "norm2"), (r"attn\.out_proj", "attn.proj"),
    (r"mlp\.c_fc", "mlp.0"), (r"mlp\.c_proj", "mlp.2"),
)


def _open_clip_finish(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """open_clip keeps the class token as [D] and the positions as [T, D]; Wan's tower has batch axes."""
    out = dict(tensors)
    out["cls_embedding"] = out["cls_embedding"].reshape(1, 1, -1)
    out["pos_embedding"] = out["pos_embedding"].reshape(1, *out["pos_embedding"].shape[-2:])
    return out


# open_clip's ViT names (its text tower: `transformer.*`, `token_embedding`, ... at the top level).
OPEN_CLIP = KeyLayout("open_clip", (
    *under_prefix(r"visual\.", (
        (r"conv1\.weight", "patch_embedding.weight"),
        (r"class_embedding", "cls_embedding"),
        (r"positional_embedding", "pos_embedding"),
        (r"ln_pre\.(weight|bias)", r"pre_norm.\1"),
        (r"ln_post\.(weight|bias)", r"post_norm.\1"),
        (r"proj", "head"),
        (r"transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", r"transformer.\1.attn.to_qkv.\2"),
        *compose(((rf"transformer\.resblocks\.(\d+)\.{old}", rf"transformer.\1.{new}") for old, new in _OPEN_CLIP_BLOCK),
                 (_PARAM,)),
    )),
    *dropped((r"(transformer|text|textual|token_embedding|ln_final|positional_embedding|text_projection|"
              r"logit_scale|attn_mask)(\..*)?",)),
), targets=_CANONICAL, finish=_open_clip_finish, hint=_HINT)

_HF_BLOCK = (
    (r"layer_norm1", "norm1"), (r"layer_norm2", "norm2"), (r"self_attn\.out_proj", "attn.proj"),
    (r"mlp\.fc1", "mlp.0"), (r"mlp\.fc2", "mlp.2"),
    (r"self_attn\.([qkv])_proj", r"attn.\2"),  # (group 1: the block) merged into attn.to_qkv by _hf_finish
)
_HF_SPLIT = re.compile(r"transformer\.(\d+)\.attn\.q\.(weight|bias)")


def _hf_finish(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers' separate q, k, v projections -> Wan's fused to_qkv (rows in q, k, v order); class token
    and position table with batch axes; the projection stored [out, in] as a Linear -> Wan's [in, out] matrix."""
    out = {}
    for key, value in tensors.items():
        if match := _HF_SPLIT.fullmatch(key):
            block, kind = match.groups()
            parts = [tensors.get(f"transformer.{block}.attn.{p}.{kind}") for p in "qkv"]
            if any(p is None for p in parts):
                raise CheckpointError(f"CLIP vision block {block} lacks one of its q/k/v projections ({kind}); "
                                      "the file is incomplete")
            out[f"transformer.{block}.attn.to_qkv.{kind}"] = torch.cat(parts)
        elif not re.fullmatch(r"transformer\.\d+\.attn\.[kv]\.(weight|bias)", key):
            out[key] = value
    out["cls_embedding"] = out["cls_embedding"].reshape(1, 1, -1)
    out["pos_embedding"] = out["pos_embedding"].reshape(1, *out["pos_embedding"].shape[-2:])
    if "head" in out:
        out["head"] = out["head"].t()
    return out


_HF_TARGETS = (*_CANONICAL, r"transformer\.\d+\.attn\.[qkv]\.(weight|bias)")

# transformers' CLIPVisionModel(WithProjection) names; ComfyUI's clip_vision_h uses them too. transformers 5
# saves a plain CLIPVisionModel without the `vision_model.` prefix.
HF = KeyLayout("transformers CLIPVisionModel", (
    *under_prefix(r"(?:vision_model\.)?", (
        (r"embeddings\.patch_embedding\.weight", "patch_embedding.weight"),
        (r"embeddings\.class_embedding", "cls_embedding"),
        (r"embeddings\.position_embedding\.weight", "pos_embedding"),
        (r"embeddings\.position_ids", None),  # a buffer of 0..T-1, not a weight
        (r"pre_layrnorm\.(weight|bias)", r"pre_norm.\1"),
        (r"post_layernorm\.(weight|bias)", r"post_norm.\1"),
        *compose(((rf"encoder\.layers\.(\d+)\.{old}", rf"transformer.\1.{new}") for old, new in _HF_BLOCK),
                 (_PARAM,)),
    )),
    (r"visual_projection\.weight", "head"),
    *dropped((r"text_model\..*", r"text_projection\.weight", r"logit_scale")),  # a full CLIPModel file
), targets=_HF_TARGETS, finish=_hf_finish, hint=_HINT)

LAYOUTS = {"official": OFFICIAL, "open_clip": OPEN_CLIP, "hf": HF}


def detect_layout(keys: set[str], source: str) -> str:
    if "visual.patch_embedding.weight" in keys:
        return "official"
    if "visual.conv1.weight" in keys:
        return "open_clip"
    if {"vision_model.embeddings.patch_embedding.weight", "embeddings.patch_embedding.weight"} & keys:
        return "hf"
    raise CheckpointError(f"{source}: {_describe_other_model(keys)}, not a CLIP vision encoder. {_EXPECTED_FILES}")


def _describe_other_model(keys: set[str]) -> str:
    def has(fragment: str) -> bool:
        return any(fragment in k for k in keys)

    if has("self_attn.q.") or has("cross_attn.") or has("diffusion_model."):
        return "this looks like a Wan diffusion model (DiT) — load it with the diffusion-model loader"
    if has("decoder.conv") or has("encoder.conv1") or has("post_quant_conv"):
        return "this looks like a VAE — load it with the VAE loader"
    if has("shared.weight") or has("encoder.block.") or has("token_embedding.weight"):
        return "this looks like a text encoder — load it with the text-encoder loader"
    if has("text_model.") or has("textual."):
        return "this looks like a CLIP text encoder without its vision tower"
    return f"found no CLIP vision tensors (no patch embedding among {len(keys)} keys)"


def to_canonical(tensors: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Tensors renamed to Wan's official visual-tower names (`visual.` stripped)."""
    return LAYOUTS[detect_layout(set(tensors), source)].to_canonical(tensors, source)
