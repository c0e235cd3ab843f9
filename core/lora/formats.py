"""LoRA key formats for the Wan DiT, each a table of anchored rules onto official module names.

A LoRA key is `<module><separator><part>`: the module is named the way its trainer names it
(official `blocks.3.self_attn.q`, diffusers `blocks.3.attn1.to_q`, kohya/musubi
`lora_unet_blocks_3_self_attn_q`) and the part says what the tensor is (`lora_down.weight`,
`alpha`, `diff_b`, ...). A rule is `(pattern, template)`: the pattern must match the WHOLE key
(re.fullmatch) and the template builds the canonical module name; the `part` group names the
tensor's role. Keys no rule explains are reported, never skipped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# What a tensor of a LoRA file is, per part spelling.
DOWN, UP, ALPHA, UP_BIAS, WEIGHT_DIFF, BIAS_DIFF, MODULATION_DIFF = (
    "down", "up", "alpha", "up_bias", "weight_diff", "bias_diff", "modulation_diff")

_PARTS = {
    "lora_down.weight": DOWN, "lora_A.weight": DOWN,
    "lora_up.weight": UP, "lora_B.weight": UP,
    "lora_B.bias": UP_BIAS,  # diffusers' spelling of a bias patch that rides on the low-rank pair
    "alpha": ALPHA,
    "diff": WEIGHT_DIFF, "diff_b": BIAS_DIFF, "diff_m": MODULATION_DIFF,
}

# Official module names a LoRA may patch. Linear layers take low-rank pairs and diffs; the other
# modules (norms, patch embedding) only full diffs; `blocks.N` / `head` only modulation diffs.
_LINEAR = (
    r"blocks\.\d+\.(?:self_attn|cross_attn)\.[qkvo]",
    r"blocks\.\d+\.cross_attn\.[kv]_img",
    r"blocks\.\d+\.ffn\.[02]",
    r"(?:text_embedding|time_embedding)\.[02]",
    r"time_projection\.1",
    r"head\.head",
    r"img_emb\.proj\.[13]",
)
_OTHER = (
    r"blocks\.\d+\.(?:self_attn|cross_attn)\.norm_[qk]",
    r"blocks\.\d+\.cross_attn\.norm_k_img",
    r"blocks\.\d+\.norm3",
    r"patch_embedding",
    r"img_emb\.proj\.[04]",
)
_MODULATED = (r"blocks\.\d+", r"head")

_LOW_RANK_PARTS = r"lora_down\.weight|lora_up\.weight|lora_A\.weight|lora_B\.weight|alpha"
_DIFF_PARTS = r"diff|diff_b"

_OFFICIAL_MODULE = "|".join(_LINEAR)
_DIFF_MODULE = "|".join(_LINEAR + _OTHER)
_COMFY_PREFIX = r"(?:model\.)?diffusion_model\."

# diffusers module name -> official, as anchored rules on the module part only.
_DIFFUSERS_MODULES = (
    (r"blocks\.(\d+)\.attn1\.to_([qkv])", r"blocks.\1.self_attn.\2"),
    (r"blocks\.(\d+)\.attn1\.to_out\.0", r"blocks.\1.self_attn.o"),
    (r"blocks\.(\d+)\.attn2\.to_([qkv])", r"blocks.\1.cross_attn.\2"),
    (r"blocks\.(\d+)\.attn2\.to_out\.0", r"blocks.\1.cross_attn.o"),
    (r"blocks\.(\d+)\.attn2\.add_([kv])_proj", r"blocks.\1.cross_attn.\2_img"),
    (r"blocks\.(\d+)\.ffn\.net\.0\.proj", r"blocks.\1.ffn.0"),
    (r"blocks\.(\d+)\.ffn\.net\.2", r"blocks.\1.ffn.2"),
    (r"condition_embedder\.time_embedder\.linear_1", r"time_embedding.0"),
    (r"condition_embedder\.time_embedder\.linear_2", r"time_embedding.2"),
    (r"condition_embedder\.time_proj", r"time_projection.1"),
    (r"condition_embedder\.text_embedder\.linear_1", r"text_embedding.0"),
    (r"condition_embedder\.text_embedder\.linear_2", r"text_embedding.2"),
    (r"condition_embedder\.image_embedder\.ff\.net\.0\.proj", r"img_emb.proj.1"),
    (r"condition_embedder\.image_embedder\.ff\.net\.2", r"img_emb.proj.3"),
    (r"proj_out", r"head.head"),
)
# PEFT writes the adapter name into the key (`lora_A.default.weight`) when saved by PEFT itself.
_PEFT_PARTS = r"lora_A(?:\.[A-Za-z0-9_-]+)?\.weight|lora_B(?:\.[A-Za-z0-9_-]+)?\.weight|lora_B\.bias|alpha"
_DIFFUSERS_PREFIX = r"(?:transformer\.|base_model\.model\.)?"

# kohya / musubi-tuner: official names with dots turned into underscores, under `lora_unet_`.
_KOHYA_MODULES = (
    (r"blocks_(\d+)_(self_attn|cross_attn)_([qkvo])", r"blocks.\1.\2.\3"),
    (r"blocks_(\d+)_cross_attn_([kv])_img", r"blocks.\1.cross_attn.\2_img"),
    (r"blocks_(\d+)_ffn_([02])", r"blocks.\1.ffn.\2"),
    (r"(text_embedding|time_embedding)_([02])", r"\1.\2"),
    (r"time_projection_1", r"time_projection.1"),
    (r"head_head", r"head.head"),
    (r"img_emb_proj_([13])", r"img_emb.proj.\1"),
)


@dataclass(frozen=True)
class KeyRule:
    pattern: str  # whole-key pattern with a `part` group
    module: str  # template for the canonical module name (groups of `pattern`)


@dataclass(frozen=True)
class LoRAFormat:
    name: str
    rules: tuple[KeyRule, ...]

    def parse(self, key: str) -> Optional[tuple[str, str]]:
        """(canonical module, role) of `key`, or None when no rule of this format explains it."""
        for pattern, rule in _compiled(self):
            match = pattern.fullmatch(key)
            if match:
                part = match.group("part")
                role = _PARTS.get(part) or _PARTS[re.sub(r"\.[^.]+\.weight$", ".weight", part)]
                return match.expand(rule.module), role
        return None


_COMPILED: dict[str, list] = {}


def _compiled(fmt: LoRAFormat) -> list:
    if fmt.name not in _COMPILED:
        _COMPILED[fmt.name] = [(re.compile(rule.pattern), rule) for rule in fmt.rules]
    return _COMPILED[fmt.name]


def _official_rules(prefix: str) -> tuple[KeyRule, ...]:
    return (
        KeyRule(rf"{prefix}(?P<m>{_OFFICIAL_MODULE})\.(?P<part>{_LOW_RANK_PARTS})", r"\g<m>"),
        KeyRule(rf"{prefix}(?P<m>{_DIFF_MODULE})\.(?P<part>{_DIFF_PARTS})", r"\g<m>"),
        KeyRule(rf"{prefix}(?P<m>{'|'.join(_MODULATED)})\.(?P<part>diff_m)", r"\g<m>"),
    )


def _renamed_rules(prefix: str, modules, parts: str, separator: str = r"\.") -> tuple[KeyRule, ...]:
    return tuple(KeyRule(rf"{prefix}{pattern}{separator}(?P<part>{parts})", template) for pattern, template in modules)


# ComfyUI / official names (lightx2v, diffusion-pipe, ai-toolkit, Wan2.2-Lightning): lora_down/up or
# lora_A/B with optional alpha, plus full `.diff` / `.diff_b` / `.diff_m` patches.
COMFY = LoRAFormat("ComfyUI (diffusion_model.* official names)", _official_rules(_COMFY_PREFIX))
# The same names without any prefix (some trainers strip it).
OFFICIAL = LoRAFormat("official names", _official_rules(""))
# diffusers / PEFT (`transformer.blocks.N.attn1.to_q.lora_A.weight`); alpha from the file's metadata.
DIFFUSERS = LoRAFormat("diffusers/PEFT", _renamed_rules(_DIFFUSERS_PREFIX, _DIFFUSERS_MODULES, _PEFT_PARTS))
# kohya-ss / musubi-tuner (`lora_unet_blocks_N_self_attn_q.lora_down.weight` + alpha).
KOHYA = LoRAFormat("kohya/musubi-tuner (lora_unet_*)",
                   _renamed_rules("lora_unet_", _KOHYA_MODULES, _LOW_RANK_PARTS + "|" + _DIFF_PARTS))

FORMATS = (COMFY, OFFICIAL, DIFFUSERS, KOHYA)
