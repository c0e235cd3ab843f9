"""Key layouts of Wan DiT files, each a table of anchored rename rules onto the official key names.

A rule is `(pattern, template)`: the pattern must match the WHOLE key (re.fullmatch) and the
template builds the canonical name from its groups; a `None` template drops a tensor the model
never reads. A key that no rule explains is an error, never silently ignored, so a file of an
unknown variant cannot load half its weights.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import torch

from ..checkpoints.io import CheckpointError

# Linear layers may carry a per-tensor fp8 scale (ComfyUI "scaled fp8", normalised to `.weight_scale`).
_LINEAR = r"(?:weight|bias|weight_scale)"

# Every official key, as anchored patterns (section 2.10 of the Wan spec).
OFFICIAL_KEYS = (
    r"patch_embedding\.(?:weight|bias)",
    rf"(?:text_embedding|time_embedding)\.[02]\.{_LINEAR}",
    rf"time_projection\.1\.{_LINEAR}",
    rf"head\.head\.{_LINEAR}",
    r"head\.modulation",
    rf"img_emb\.proj\.[13]\.{_LINEAR}",
    r"img_emb\.proj\.[04]\.(?:weight|bias)",
    r"img_emb\.emb_pos",
    r"blocks\.\d+\.modulation",
    rf"blocks\.\d+\.(?:self_attn|cross_attn)\.[qkvo]\.{_LINEAR}",
    rf"blocks\.\d+\.cross_attn\.[kv]_img\.{_LINEAR}",
    r"blocks\.\d+\.(?:self_attn|cross_attn)\.norm_[qk]\.weight",
    r"blocks\.\d+\.cross_attn\.norm_k_img\.weight",
    r"blocks\.\d+\.norm3\.(?:weight|bias)",
    rf"blocks\.\d+\.ffn\.[02]\.{_LINEAR}",
)

COMFY_PREFIX = "model.diffusion_model."

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
    (r"blocks\.(\d+)\.scale_shift_table", r"blocks.\1.modulation"),
    (r"blocks\.(\d+)\.attn1\.to_([qkv])\.(weight|bias)", r"blocks.\1.self_attn.\2.\3"),
    (r"blocks\.(\d+)\.attn1\.to_out\.0\.(weight|bias)", r"blocks.\1.self_attn.o.\2"),
    (r"blocks\.(\d+)\.attn1\.norm_([qk])\.weight", r"blocks.\1.self_attn.norm_\2.weight"),
    (r"blocks\.(\d+)\.attn2\.to_([qkv])\.(weight|bias)", r"blocks.\1.cross_attn.\2.\3"),
    (r"blocks\.(\d+)\.attn2\.to_out\.0\.(weight|bias)", r"blocks.\1.cross_attn.o.\2"),
    (r"blocks\.(\d+)\.attn2\.norm_([qk])\.weight", r"blocks.\1.cross_attn.norm_\2.weight"),
    (r"blocks\.(\d+)\.attn2\.add_([kv])_proj\.(weight|bias)", r"blocks.\1.cross_attn.\2_img.\3"),
    (r"blocks\.(\d+)\.attn2\.norm_added_k\.weight", r"blocks.\1.cross_attn.norm_k_img.weight"),
    # Some diffusers exports carry an unused image-query norm; diffusers itself ignores it on load.
    (r"blocks\.\d+\.attn2\.norm_added_q\.weight", None),
    # diffusers swapped the names: its affine pre-cross-attention norm is `norm2`, official `norm3`.
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"blocks.\1.norm3.\2"),
    (r"blocks\.(\d+)\.ffn\.net\.0\.proj\.(weight|bias)", r"blocks.\1.ffn.0.\2"),
    (r"blocks\.(\d+)\.ffn\.net\.2\.(weight|bias)", r"blocks.\1.ffn.2.\2"),
)


@dataclass(frozen=True)
class KeyLayout:
    name: str
    rules: tuple[tuple[str, Optional[str]], ...]

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
                        out[match.expand(template)] = value
                    break
            else:
                unknown.append(key)
        if unknown:
            raise CheckpointError(
                f"{source}: {len(unknown)} tensor(s) that no rule of the {self.name} Wan DiT layout explains, "
                f"first: {sorted(unknown)[:5]}. This file is a different model or an unsupported variant "
                f"of Wan; Kinema loads Wan2.1/2.2 T2V, I2V, FLF2V and TI2V DiTs"
            )
        return out


OFFICIAL = KeyLayout("official", tuple((p, r"\g<0>") for p in OFFICIAL_KEYS))
# ComfyUI repackaged files: official names, optionally under ComfyUI's model prefix.
COMFY = KeyLayout("ComfyUI", tuple((rf"(?:{re.escape(COMFY_PREFIX)})?({p})", r"\1") for p in OFFICIAL_KEYS))
DIFFUSERS = KeyLayout("diffusers", _DIFFUSERS_RULES)
