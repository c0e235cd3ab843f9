"""Key layouts of Wan DiT files, each a table of anchored rename rules onto the official key names.

A rule is `(pattern, template)`: the pattern must match the WHOLE key (re.fullmatch) and the
template builds the canonical name from its groups; a `None` template drops a tensor the model
never reads. A layout may end with a `finish` step for what renaming cannot do (diffusers splits
and reshapes a few Animate tensors). A key that no rule explains is an error, never silently ignored, so a file of an
unknown variant cannot load half its weights.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional, Union

import torch

from ..checkpoints.io import CheckpointError

# Linear layers may carry a per-tensor fp8 scale (ComfyUI "scaled fp8", normalised to `.weight_scale`).
_LINEAR = r"(?:weight|bias|weight_scale)"

# Every official key, as anchored patterns (sections 2.10, 9.1 and 10.4 of the Wan spec).
_BLOCK = r"(?:vace_)?blocks\.\d+"  # VACE blocks have the main blocks' structure and names
_MOTION = r"motion_encoder\.enc\.net_app\.convs\.\d+"
OFFICIAL_KEYS = (
    r"patch_embedding\.(?:weight|bias)",
    rf"(?:text_embedding|time_embedding)\.[02]\.{_LINEAR}",
    rf"time_projection\.1\.{_LINEAR}",
    rf"head\.head\.{_LINEAR}",
    r"head\.modulation",
    rf"img_emb\.proj\.[13]\.{_LINEAR}",
    r"img_emb\.proj\.[04]\.(?:weight|bias)",
    r"img_emb\.emb_pos",
    rf"{_BLOCK}\.modulation",
    rf"{_BLOCK}\.(?:self_attn|cross_attn)\.[qkvo]\.{_LINEAR}",
    rf"{_BLOCK}\.cross_attn\.[kv]_img\.{_LINEAR}",
    rf"{_BLOCK}\.(?:self_attn|cross_attn)\.norm_[qk]\.weight",
    rf"{_BLOCK}\.cross_attn\.norm_k_img\.weight",
    rf"{_BLOCK}\.norm3\.(?:weight|bias)",
    rf"{_BLOCK}\.ffn\.[02]\.{_LINEAR}",
    # VACE (Wan2.1 VACE-1.3B/14B)
    r"vace_patch_embedding\.(?:weight|bias)",
    rf"vace_blocks\.\d+\.(?:before|after)_proj\.{_LINEAR}",
    # Wan2.2 Animate
    r"pose_patch_embedding\.(?:weight|bias)",
    r"motion_encoder\.enc\.net_app\.convs\.0\.0\.weight",
    r"motion_encoder\.enc\.net_app\.convs\.0\.1\.bias",
    rf"{_MOTION}\.(?:conv1\.0|conv2\.1|skip\.1)\.weight",
    rf"{_MOTION}\.(?:conv1\.1|conv2\.2)\.bias",
    rf"{_MOTION}\.weight",
    rf"motion_encoder\.enc\.fc\.\d+\.{_LINEAR}",
    r"motion_encoder\.dec\.direction\.weight",
    r"face_encoder\.(?:conv1_local|conv2|conv3)\.conv\.(?:weight|bias)",
    rf"face_encoder\.out_proj\.{_LINEAR}",
    r"face_encoder\.padding_tokens",
    rf"face_adapter\.fuser_blocks\.\d+\.(?:linear1_kv|linear1_q|linear2)\.{_LINEAR}",
    r"face_adapter\.fuser_blocks\.\d+\.[qk]_norm\.weight",
)
# Tensors of official files the model does not read: the motion encoder's blur filters, a fixed
# [1, 3, 3, 1] outer product that official code saves as buffers.
OFFICIAL_UNUSED = (rf"{_MOTION}\.(?:conv2|skip)\.0\.kernel",)

COMFY_PREFIX = "model.diffusion_model."

# A rule's template: a `re` expansion string, a function of the match (for index arithmetic), or
# None to drop a tensor the model never reads.
Template = Union[str, Callable[[re.Match], str], None]

def _diffusers_block_rules(official: str, diffusers: str) -> tuple:
    """Rename rules of one kind of transformer block (main `blocks` or `vace_blocks`)."""
    d, o = re.escape(diffusers), official
    return (
        (rf"{d}\.(\d+)\.scale_shift_table", rf"{o}.\1.modulation"),
        (rf"{d}\.(\d+)\.attn1\.to_([qkv])\.(weight|bias)", rf"{o}.\1.self_attn.\2.\3"),
        (rf"{d}\.(\d+)\.attn1\.to_out\.0\.(weight|bias)", rf"{o}.\1.self_attn.o.\2"),
        (rf"{d}\.(\d+)\.attn1\.norm_([qk])\.weight", rf"{o}.\1.self_attn.norm_\2.weight"),
        (rf"{d}\.(\d+)\.attn2\.to_([qkv])\.(weight|bias)", rf"{o}.\1.cross_attn.\2.\3"),
        (rf"{d}\.(\d+)\.attn2\.to_out\.0\.(weight|bias)", rf"{o}.\1.cross_attn.o.\2"),
        (rf"{d}\.(\d+)\.attn2\.norm_([qk])\.weight", rf"{o}.\1.cross_attn.norm_\2.weight"),
        (rf"{d}\.(\d+)\.attn2\.add_([kv])_proj\.(weight|bias)", rf"{o}.\1.cross_attn.\2_img.\3"),
        (rf"{d}\.(\d+)\.attn2\.norm_added_k\.weight", rf"{o}.\1.cross_attn.norm_k_img.weight"),
        # Some diffusers exports carry an unused image-query norm; diffusers itself ignores it on load.
        (rf"{d}\.\d+\.attn2\.norm_added_q\.weight", None),
        # diffusers swapped the names: its affine pre-cross-attention norm is `norm2`, official `norm3`.
        (rf"{d}\.(\d+)\.norm2\.(weight|bias)", rf"{o}.\1.norm3.\2"),
        (rf"{d}\.(\d+)\.ffn\.net\.0\.proj\.(weight|bias)", rf"{o}.\1.ffn.0.\2"),
        (rf"{d}\.(\d+)\.ffn\.net\.2\.(weight|bias)", rf"{o}.\1.ffn.2.\2"),
    )


_ME = "motion_encoder.enc.net_app.convs"
_DIFFUSERS_RULES = (
    (r"patch_embedding\.(weight|bias)", r"patch_embedding.\1"),
    (r"condition_embedder\.time_embedder\.linear_1\.(weight|bias)", r"time_embedding.0.\1"),
    (r"condition_embedder\.time_embedder\.linear_2\.(weight|bias)", r"time_embedding.2.\1"),
    (r"condition_embedder\.time_proj\.(weight|bias)", r"time_projection.1.\1"),
    (r"condition_embedder\.text_embedder\.linear_1\.(weight|bias)", r"text_embedding.0.\1"),
    (r"condition_embedder\.text_embedder\.linear_2\.(weight|bias)", r"text_embedding.2.\1"),
    (r"condition_embedder\.image_embedder\.norm1\.(weight|bias)", r"img_emb.proj.0.\1"),
    (r"condition_embedder\.image_embedder\.ff\.net\.0\.proj\.(weight|bias)", r"img_emb.proj.1.\1"),
    (r"condition_embedder\.image_embedder\.ff\.net\.2\.(weight|bias)", r"img_emb.proj.3.\1"),
    (r"condition_embedder\.image_embedder\.norm2\.(weight|bias)", r"img_emb.proj.4.\1"),
    (r"condition_embedder\.image_embedder\.pos_embed", r"img_emb.emb_pos"),
    (r"scale_shift_table", r"head.modulation"),
    (r"proj_out\.(weight|bias)", r"head.head.\1"),
    *_diffusers_block_rules("blocks", "blocks"),
    # VACE
    (r"vace_patch_embedding\.(weight|bias)", r"vace_patch_embedding.\1"),
    *_diffusers_block_rules("vace_blocks", "vace_blocks"),
    (r"vace_blocks\.(\d+)\.proj_in\.(weight|bias)", r"vace_blocks.\1.before_proj.\2"),
    (r"vace_blocks\.(\d+)\.proj_out\.(weight|bias)", r"vace_blocks.\1.after_proj.\2"),
    # Animate. diffusers numbers the residual blocks from 0 (official convs.1..R), keeps k and v of the
    # face adapter apart (official: one linear1_kv) and stores the activation biases flat; the names
    # below marked "staged" are finished by `_finish_diffusers_animate`.
    (r"pose_patch_embedding\.(weight|bias)", r"pose_patch_embedding.\1"),
    (r"motion_encoder\.conv_in\.weight", rf"{_ME}.0.0.weight"),
    (r"motion_encoder\.conv_in\.act_fn\.bias", rf"{_ME}.0.1.bias"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv1\.weight", lambda m: f"{_ME}.{int(m[1]) + 1}.conv1.0.weight"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv1\.act_fn\.bias", lambda m: f"{_ME}.{int(m[1]) + 1}.conv1.1.bias"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv2\.weight", lambda m: f"{_ME}.{int(m[1]) + 1}.conv2.1.weight"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv2\.act_fn\.bias", lambda m: f"{_ME}.{int(m[1]) + 1}.conv2.2.bias"),
    (r"motion_encoder\.res_blocks\.(\d+)\.conv_skip\.weight", lambda m: f"{_ME}.{int(m[1]) + 1}.skip.1.weight"),
    (r"motion_encoder\.conv_out\.weight", r"motion_encoder.conv_out.weight"),  # staged: index = R + 1
    (r"motion_encoder\.motion_network\.(\d+)\.(weight|bias)", r"motion_encoder.enc.fc.\1.\2"),
    (r"motion_encoder\.motion_synthesis_weight", r"motion_encoder.dec.direction.weight"),
    (r"face_encoder\.(conv1_local|conv2|conv3)\.(weight|bias)", r"face_encoder.\1.conv.\2"),
    (r"face_encoder\.(out_proj\.(?:weight|bias)|padding_tokens)", r"face_encoder.\1"),
    (r"face_adapter\.(\d+)\.to_q\.(weight|bias)", r"face_adapter.fuser_blocks.\1.linear1_q.\2"),
    (r"face_adapter\.(\d+)\.to_([kv])\.(weight|bias)", r"face_adapter.fuser_blocks.\1.linear1_\2.\3"),  # staged
    (r"face_adapter\.(\d+)\.to_out\.(weight|bias)", r"face_adapter.fuser_blocks.\1.linear2.\2"),
    (r"face_adapter\.(\d+)\.norm_([qk])\.weight", r"face_adapter.fuser_blocks.\1.\2_norm.weight"),
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


@dataclass(frozen=True)
class KeyLayout:
    name: str
    rules: tuple[tuple[str, Template], ...]
    finish: Optional[Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = None  # reshapes, merges

    def to_canonical(self, tensors: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
        """Tensors renamed to official keys; raises CheckpointError naming keys no rule explains."""
        compiled = [(re.compile(pattern), template) for pattern, template in self.rules]
        out: dict[str, torch.Tensor] = {}
        unknown: list[str] = []
        for key, value in tensors.items():
            for pattern, template in compiled:
                match = pattern.fullmatch(key)
                if match:
                    if template is not None:
                        out[match.expand(template) if isinstance(template, str) else template(match)] = value
                    break
            else:
                unknown.append(key)
        if unknown:
            raise CheckpointError(
                f"{source}: {len(unknown)} tensor(s) that no rule of the {self.name} Wan DiT layout explains, "
                f"first: {sorted(unknown)[:5]}. This file is a different model or an unsupported variant "
                f"of Wan; Kinema loads Wan2.1/2.2 T2V, I2V, FLF2V, TI2V, VACE and Animate DiTs"
            )
        return self.finish(out) if self.finish is not None else out


OFFICIAL = KeyLayout("official", tuple((p, r"\g<0>") for p in OFFICIAL_KEYS) + tuple((p, None) for p in OFFICIAL_UNUSED))
# ComfyUI repackaged files: official names, optionally under ComfyUI's model prefix.
_COMFY_OPTIONAL_PREFIX = rf"(?:{re.escape(COMFY_PREFIX)})?"
COMFY = KeyLayout("ComfyUI", tuple((rf"{_COMFY_OPTIONAL_PREFIX}({p})", r"\1") for p in OFFICIAL_KEYS)
                  + tuple((rf"{_COMFY_OPTIONAL_PREFIX}{p}", None) for p in OFFICIAL_UNUSED))
DIFFUSERS = KeyLayout("diffusers", _DIFFUSERS_RULES, finish=_finish_diffusers_animate)
