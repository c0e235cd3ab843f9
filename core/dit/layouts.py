"""Key layouts of Wan DiT files: the official names, and the rename tables onto them.

Every fact is written once here and built into layouts by the renaming engine
(`core.checkpoints.renaming`): the official modules with their parameters (`dit_modules`), the
diffusers module names (`DIFFUSERS_MODULES`, also read by the LoRA formats) and ComfyUI's prefix.
A layout renames with its rules and then checks each new name is an official key (`targets`), so a
rename table is written per module, not per parameter spelling.
"""
from __future__ import annotations

import re

import torch

from ..checkpoints.renaming import KeyLayout, Rule, compose, dropped, identity, under_prefix

# Which parameters a module has, per layout. Official linear layers may carry a per-tensor fp8
# scale (ComfyUI "scaled fp8", normalised to `.weight_scale`); diffusers files are never fp8-scaled.
LINEAR, AFFINE, NORM = "linear", "affine", "norm"
_OFFICIAL_PARAMETERS = {LINEAR: r"weight|bias|weight_scale", AFFINE: r"weight|bias", NORM: r"weight"}
_DIFFUSERS_PARAMETERS = r"weight|bias"

# A transformer block; VACE blocks have the main blocks' structure and names.
BLOCK = r"(?:vace_)?blocks\.\d+"


def dit_modules(block: str = BLOCK) -> tuple[tuple[str, str], ...]:
    """(official module pattern, kind) of the Wan DiT every variant shares (section 2.10 of the Wan spec)."""
    return (
        (r"patch_embedding", AFFINE),
        (r"(?:text_embedding|time_embedding)\.[02]", LINEAR),
        (r"time_projection\.1", LINEAR),
        (r"head\.head", LINEAR),
        (r"img_emb\.proj\.[13]", LINEAR),
        (r"img_emb\.proj\.[04]", AFFINE),
        (rf"{block}\.(?:self_attn|cross_attn)\.[qkvo]", LINEAR),
        (rf"{block}\.cross_attn\.[kv]_img", LINEAR),
        (rf"{block}\.ffn\.[02]", LINEAR),
        (rf"{block}\.(?:self_attn|cross_attn)\.norm_[qk]", NORM),
        (rf"{block}\.cross_attn\.norm_k_img", NORM),
        (rf"{block}\.norm3", AFFINE),
    )


def modulated_modules(block: str = BLOCK) -> tuple[str, ...]:
    """Modules that own a `.modulation` table (adaLN shift/scale/gate)."""
    return (block, r"head")


_MOTION = r"motion_encoder\.enc\.net_app\.convs\.\d+"
_EXTRA_MODULES = (
    # VACE (Wan2.1 VACE-1.3B/14B), section 9.1
    (r"vace_patch_embedding", AFFINE),
    (r"vace_blocks\.\d+\.(?:before|after)_proj", LINEAR),
    # Wan2.2 Animate, section 10.4
    (r"pose_patch_embedding", AFFINE),
    (r"motion_encoder\.enc\.fc\.\d+", LINEAR),
    (r"face_encoder\.(?:conv1_local|conv2|conv3)\.conv", AFFINE),
    (r"face_encoder\.out_proj", LINEAR),
    (r"face_adapter\.fuser_blocks\.\d+\.(?:linear1_kv|linear1_q|linear2)", LINEAR),
    (r"face_adapter\.fuser_blocks\.\d+\.[qk]_norm", NORM),
)
# Animate's motion encoder: conv stacks whose layers hold only a weight or only a (FusedLeakyReLU) bias.
_MOTION_KEYS = (
    r"motion_encoder\.enc\.net_app\.convs\.0\.0\.weight",
    r"motion_encoder\.enc\.net_app\.convs\.0\.1\.bias",
    rf"{_MOTION}\.(?:conv1\.0|conv2\.1|skip\.1)\.weight",
    rf"{_MOTION}\.(?:conv1\.1|conv2\.2)\.bias",
    rf"{_MOTION}\.weight",
    r"motion_encoder\.dec\.direction\.weight",
    r"face_encoder\.padding_tokens",
)

# Every official key, as anchored patterns.
OFFICIAL_KEYS = (
    *(rf"{module}\.(?:{_OFFICIAL_PARAMETERS[kind]})" for module, kind in dit_modules() + _EXTRA_MODULES),
    *(rf"{module}\.modulation" for module in modulated_modules()),
    r"img_emb\.emb_pos",
    *_MOTION_KEYS,
)
# Tensors of official files the model does not read: the motion encoder's blur filters, a fixed
# [1, 3, 3, 1] outer product that official code saves as buffers.
OFFICIAL_UNUSED = (rf"{_MOTION}\.(?:conv2|skip)\.0\.kernel",)

# ComfyUI saves a diffusion model's tensors under its model wrapper (`model.`) and attribute
# (`diffusion_model.`): comfy/supported_models_base.py `process_unet_state_dict_for_saving`, which
# no Wan model config overrides. Its LoRA keys name modules from the wrapper (`diffusion_model.`).
COMFY_WRAPPER, COMFY_DIT = "model.", "diffusion_model."
COMFY_PREFIX = COMFY_WRAPPER + COMFY_DIT
COMFY_LORA_PREFIX = rf"(?:{re.escape(COMFY_WRAPPER)})?{re.escape(COMFY_DIT)}"

# diffusers module name -> official (diffusers' transformer_wan.py and transformer_wan_vace.py).
_B = rf"({BLOCK})"
DIFFUSERS_MODULES: tuple[Rule, ...] = (
    (r"patch_embedding", "patch_embedding"),
    (r"condition_embedder\.time_embedder\.linear_1", "time_embedding.0"),
    (r"condition_embedder\.time_embedder\.linear_2", "time_embedding.2"),
    (r"condition_embedder\.time_proj", "time_projection.1"),
    (r"condition_embedder\.text_embedder\.linear_1", "text_embedding.0"),
    (r"condition_embedder\.text_embedder\.linear_2", "text_embedding.2"),
    (r"condition_embedder\.image_embedder\.norm1", "img_emb.proj.0"),
    (r"condition_embedder\.image_embedder\.ff\.net\.0\.proj", "img_emb.proj.1"),
    (r"condition_embedder\.image_embedder\.ff\.net\.2", "img_emb.proj.3"),
    (r"condition_embedder\.image_embedder\.norm2", "img_emb.proj.4"),
    (r"proj_out", "head.head"),
    (rf"{_B}\.attn1\.to_([qkv])", r"\1.self_attn.\2"),
    (rf"{_B}\.attn1\.to_out\.0", r"\1.self_attn.o"),
    (rf"{_B}\.attn1\.norm_([qk])", r"\1.self_attn.norm_\2"),
    (rf"{_B}\.attn2\.to_([qkv])", r"\1.cross_attn.\2"),
    (rf"{_B}\.attn2\.to_out\.0", r"\1.cross_attn.o"),
    (rf"{_B}\.attn2\.norm_([qk])", r"\1.cross_attn.norm_\2"),
    (rf"{_B}\.attn2\.add_([kv])_proj", r"\1.cross_attn.\2_img"),
    (rf"{_B}\.attn2\.norm_added_k", r"\1.cross_attn.norm_k_img"),
    # diffusers swapped the names: its affine pre-cross-attention norm is `norm2`, official `norm3`.
    (rf"{_B}\.norm2", r"\1.norm3"),
    (rf"{_B}\.ffn\.net\.0\.proj", r"\1.ffn.0"),
    (rf"{_B}\.ffn\.net\.2", r"\1.ffn.2"),
    # VACE
    (r"vace_patch_embedding", "vace_patch_embedding"),
    (r"vace_blocks\.(\d+)\.proj_in", r"vace_blocks.\1.before_proj"),
    (r"vace_blocks\.(\d+)\.proj_out", r"vace_blocks.\1.after_proj"),
    # Animate
    (r"pose_patch_embedding", "pose_patch_embedding"),
    (r"motion_encoder\.motion_network\.(\d+)", r"motion_encoder.enc.fc.\1"),
    (r"face_encoder\.(conv1_local|conv2|conv3)", r"face_encoder.\1.conv"),
    (r"face_encoder\.out_proj", "face_encoder.out_proj"),
    (r"face_adapter\.(\d+)\.to_q", r"face_adapter.fuser_blocks.\1.linear1_q"),
    (r"face_adapter\.(\d+)\.to_([kv])", r"face_adapter.fuser_blocks.\1.linear1_\2"),  # staged
    (r"face_adapter\.(\d+)\.to_out", r"face_adapter.fuser_blocks.\1.linear2"),
    (r"face_adapter\.(\d+)\.norm_([qk])", r"face_adapter.fuser_blocks.\1.\2_norm"),
)

# diffusers tensors that are not `<module>.<weight|bias>`. Animate: diffusers numbers the residual
# blocks from 0 (official convs.1..R), keeps k and v of the face adapter apart (official: one
# linear1_kv) and stores the activation biases flat; the names marked "staged" are finished by
# `_finish_diffusers_animate`.
_ME = "motion_encoder.enc.net_app.convs"
_STAGED = (r"motion_encoder\.conv_out\.weight", r"face_adapter\.fuser_blocks\.\d+\.linear1_[kv]\.(?:weight|bias)")
_DIFFUSERS_TENSORS: tuple[Rule, ...] = (
    (r"scale_shift_table", "head.modulation"),
    (rf"{_B}\.scale_shift_table", r"\1.modulation"),
    (r"condition_embedder\.image_embedder\.pos_embed", "img_emb.emb_pos"),
    # Some diffusers exports carry an unused image-query norm; diffusers itself ignores it on load.
    (rf"{BLOCK}\.attn2\.norm_added_q\.weight", None),
    (r"motion_encoder\.conv_in\.weight", f"{_ME}.0.0.weight"),
    (r"motion_encoder\.conv_in\.act_fn\.bias", f"{_ME}.0.1.bias"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv1\.weight", lambda m: f"{_ME}.{int(m[1]) + 1}.conv1.0.weight"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv1\.act_fn\.bias", lambda m: f"{_ME}.{int(m[1]) + 1}.conv1.1.bias"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv2\.weight", lambda m: f"{_ME}.{int(m[1]) + 1}.conv2.1.weight"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv2\.act_fn\.bias", lambda m: f"{_ME}.{int(m[1]) + 1}.conv2.2.bias"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv_skip\.weight", lambda m: f"{_ME}.{int(m[1]) + 1}.skip.1.weight"),
    (r"motion_encoder\.conv_out\.weight", "motion_encoder.conv_out.weight"),  # staged: index = R + 1
    (r"motion_encoder\.motion_synthesis_weight", "motion_encoder.dec.direction.weight"),
    (r"face_encoder\.padding_tokens", "face_encoder.padding_tokens"),
)


def _finish_diffusers_animate(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The staged Animate names of the diffusers layout -> official names and shapes."""
    if "motion_encoder.conv_out.weight" in tensors:
        blocks = {int(m.group(1)) for k in tensors if (m := re.match(rf"{re.escape(_ME)}\.(\d+)\.conv1\.", k))}
        tensors[f"{_ME}.{len(blocks) + 1}.weight"] = tensors.pop("motion_encoder.conv_out.weight")
    for key in [k for k in tensors if re.fullmatch(rf"{re.escape(_ME)}\.(?:0\.1|\d+\.conv1\.1|\d+\.conv2\.2)\.bias", k)]:
        tensors[key] = tensors[key].reshape(1, -1, 1, 1)  # official FusedLeakyReLU bias [1, C, 1, 1]
    for key in [k for k in tensors if re.fullmatch(r"face_adapter\.fuser_blocks\.\d+\.linear1_k\.(?:weight|bias)", k)]:
        value_key = key.replace(".linear1_k.", ".linear1_v.")
        if value_key in tensors:  # official packs [k; v] in one projection
            tensors[key.replace(".linear1_k.", ".linear1_kv.")] = torch.cat([tensors.pop(key), tensors.pop(value_key)])
    return tensors


_HINT = ("This file is a different model or an unsupported variant of Wan; Kinema loads Wan2.1/2.2 T2V, I2V, "
         "FLF2V, TI2V, VACE and Animate DiTs")
# Official names are kept as they are (and checked against OFFICIAL_KEYS).
_OFFICIAL_RULES = dropped(OFFICIAL_UNUSED) + identity([r".+"])

OFFICIAL = KeyLayout("official Wan DiT", _OFFICIAL_RULES, targets=OFFICIAL_KEYS, hint=_HINT)
# ComfyUI repackaged files: official names, optionally under ComfyUI's model prefix.
COMFY = KeyLayout("ComfyUI Wan DiT", under_prefix(rf"(?:{re.escape(COMFY_PREFIX)})?", _OFFICIAL_RULES),
                  targets=OFFICIAL_KEYS, hint=_HINT)
DIFFUSERS = KeyLayout(
    "diffusers Wan DiT",
    _DIFFUSERS_TENSORS + compose(DIFFUSERS_MODULES, [(_DIFFUSERS_PARAMETERS, r"\g<0>")]),
    targets=OFFICIAL_KEYS + _STAGED, finish=_finish_diffusers_animate, hint=_HINT,
)
