"""LoRA key formats for the Wan DiT, as layouts of the renaming engine (core.checkpoints.renaming).

A LoRA key is `<prefix><module><separator><part>`: the module is named the way its trainer names it
(official `blocks.3.self_attn.q`, diffusers `blocks.3.attn1.to_q`, kohya/musubi
`lora_unet_blocks_3_self_attn_q`) and the part says what the tensor is (`lora_down.weight`,
`alpha`, `diff_b`, ...). Every format renames a key to `<official module>.<role>`. The module names
come from the DiT's own tables (core/dit/layouts.py: official modules, diffusers module renames,
ComfyUI's prefix); `TARGETS` says which roles each official module can take.
"""
from __future__ import annotations

import re
from typing import Iterable

from ..checkpoints.renaming import KeyLayout, Rule, compose, identity, under_prefix
from ..dit.layouts import COMFY_LORA_PREFIX, DIFFUSERS_MODULES, LINEAR, dit_modules, modulated_modules

# What a tensor of a LoRA file is; also the last part of its canonical name (`blocks.3.self_attn.q.down`).
DOWN, UP, ALPHA, UP_BIAS, WEIGHT_DIFF, BIAS_DIFF, MODULATION_DIFF = (
    "down", "up", "alpha", "up_bias", "weight_diff", "bias_diff", "modulation_diff")

# Part spellings -> role.
_LOW_RANK_PARTS = ((r"lora_down\.weight|lora_A\.weight", DOWN), (r"lora_up\.weight|lora_B\.weight", UP),
                   (r"alpha", ALPHA))
_DIFF_PARTS = ((r"diff", WEIGHT_DIFF), (r"diff_b", BIAS_DIFF), (r"diff_m", MODULATION_DIFF))
# PEFT writes the adapter name into the key (`lora_A.default.weight`) when saved by PEFT itself;
# `lora_B.bias` is diffusers' spelling of a bias patch that rides on the low-rank pair.
_PEFT_PARTS = ((r"lora_A(?:\.[A-Za-z0-9_-]+)?\.weight", DOWN), (r"lora_B(?:\.[A-Za-z0-9_-]+)?\.weight", UP),
               (r"lora_B\.bias", UP_BIAS), (r"alpha", ALPHA))
_PEFT_PREFIX = r"(?:transformer\.|base_model\.model\.)?"


def _any_of(patterns: Iterable[str]) -> str:
    return "|".join(f"(?:{pattern})" for pattern in patterns)


# What a LoRA may patch (main blocks only): linear layers take low-rank pairs and full diffs, the
# other modules (norms, patch embedding) only full diffs, `blocks.N` / `head` only modulation diffs.
_MAIN_BLOCK = r"blocks\.\d+"
_MODULES = dit_modules(block=_MAIN_BLOCK)
_LINEAR_MODULES = tuple(module for module, kind in _MODULES if kind == LINEAR)
TARGETS = (
    rf"(?:{_any_of(_LINEAR_MODULES)})\.(?:{DOWN}|{UP}|{ALPHA}|{UP_BIAS})",
    rf"(?:{_any_of(module for module, _ in _MODULES)})\.(?:{WEIGHT_DIFF}|{BIAS_DIFF})",
    rf"(?:{_any_of(modulated_modules(block=_MAIN_BLOCK))})\.{MODULATION_DIFF}",
)


def _dots_as_underscores(module: str) -> Rule:
    """kohya/musubi spell an official module with its dots as underscores (`blocks_3_self_attn_q`);
    the official patterns capture nothing, so the groups here are exactly the former dots."""
    def official(match: re.Match) -> str:
        chars = list(match.string)
        for group in range(1, match.re.groups + 1):
            chars[match.start(group)] = "."
        return "".join(chars)
    return module.replace(r"\.", "(_)"), official


_AS_WRITTEN = identity([r".+"])  # official module names, checked against TARGETS
_HINT = "The file mixes layouts or targets layers Kinema does not know; nothing was applied"

# ComfyUI / official names (lightx2v, diffusion-pipe, ai-toolkit, Wan2.2-Lightning): lora_down/up or
# lora_A/B with optional alpha, plus full `.diff` / `.diff_b` / `.diff_m` patches.
COMFY = KeyLayout("ComfyUI LoRA (diffusion_model.* official names)",
                  under_prefix(COMFY_LORA_PREFIX, compose(_AS_WRITTEN, _LOW_RANK_PARTS + _DIFF_PARTS)),
                  targets=TARGETS, hint=_HINT)
# The same names without any prefix (some trainers strip it).
OFFICIAL = KeyLayout("LoRA of official names", compose(_AS_WRITTEN, _LOW_RANK_PARTS + _DIFF_PARTS),
                     targets=TARGETS, hint=_HINT)
# diffusers / PEFT (`transformer.blocks.N.attn1.to_q.lora_A.weight`); alpha from the file's metadata.
DIFFUSERS = KeyLayout("diffusers/PEFT LoRA", under_prefix(_PEFT_PREFIX, compose(DIFFUSERS_MODULES, _PEFT_PARTS)),
                      targets=TARGETS, hint=_HINT)
# kohya-ss / musubi-tuner (`lora_unet_blocks_N_self_attn_q.lora_down.weight` + alpha).
KOHYA = KeyLayout("kohya/musubi-tuner LoRA (lora_unet_*)",
                  under_prefix("lora_unet_", compose([_dots_as_underscores(m) for m in _LINEAR_MODULES],
                                                     _LOW_RANK_PARTS + _DIFF_PARTS)),
                  targets=TARGETS, hint=_HINT)

FORMATS = (COMFY, OFFICIAL, DIFFUSERS, KOHYA)


def split_name(name: str) -> tuple[str, str]:
    """A canonical LoRA name -> (official module, role)."""
    module, role = name.rsplit(".", 1)
    return module, role


def diffusers_module(key: str) -> str:
    """The module of a diffusers/PEFT key as the file spells it (PEFT's alpha patterns use these names)."""
    match = re.fullmatch(rf"{_PEFT_PREFIX}(.+?)\.(?:{_any_of(p for p, _ in _PEFT_PARTS)})", key)
    if match is None:
        raise ValueError(f"{key!r} is not a diffusers/PEFT LoRA key")
    return match[1]
