"""Reading a LoRA file into per-layer patches under official Wan DiT names.

`load_lora(path)` detects the key format (the one whose rules explain the most keys), groups
the tensors per module and checks they form complete patches. A file no format explains is an
error naming its first keys. Keys of a recognised file that its format does not explain (e.g. a
text-encoder part beside the DiT's) are kept aside as `unmatched`: as native ComfyUI does, they are
skipped and named when the LoRA is applied (`core.lora.fit_lora`), never silently dropped.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Optional

import torch

from ..checkpoints.io import CheckpointError, read_state_dict
from ..checkpoints.renaming import KeyLayout
from .formats import (ALPHA, BIAS_DIFF, DIFFUSERS, DOWN, FORMATS, MODULATION_DIFF, UP, UP_BIAS, WEIGHT_DIFF,
                      diffusers_module, split_name)

PEFT_METADATA_KEY = "lora_adapter_metadata"  # where diffusers stores the PEFT config in a safetensors header
_SHOWN_KEYS = 5


@dataclass(frozen=True)
class LowRank:
    """delta W = scale * up @ down (+ bias delta scale * up_bias)."""

    down: torch.Tensor  # [r, in]
    up: torch.Tensor  # [out, r]
    scale: float  # alpha / rank (1 without alpha), strength not included
    up_bias: Optional[torch.Tensor] = None  # [out] diffusers lora_B.bias, scaled like the pair

    @property
    def rank(self) -> int:
        return self.down.shape[0]


@dataclass(frozen=True)
class LoRA:
    """One LoRA file as patches of official DiT names.

    low_rank: Linear module name (`blocks.3.self_attn.q`) -> LowRank.
    diffs: parameter name (`blocks.3.self_attn.q.bias`, `blocks.3.modulation`, ...) -> full delta.
    """

    source: str
    format: str
    low_rank: dict[str, LowRank] = field(default_factory=dict)
    diffs: dict[str, torch.Tensor] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()  # file keys the format's rules do not explain (skipped, and named)

    def __len__(self) -> int:
        return len(self.low_rank) + len(self.diffs)


def load_lora(path: str | os.PathLike) -> LoRA:
    """Read a Wan DiT LoRA file (.safetensors / .pth) in any supported key format."""
    state = read_state_dict(path)
    return lora_from_tensors(state.tensors, state.source, state.metadata)


def lora_from_tensors(tensors: dict[str, torch.Tensor], source: str, metadata: Optional[dict] = None) -> LoRA:
    if not tensors:
        raise CheckpointError(f"{source}: the file holds no tensors; it is not a LoRA")
    dora = next((key for key in tensors if "dora_scale" in key), None)
    if dora is not None:
        raise CheckpointError(f"{source}: this is a DoRA (key {dora!r}); DoRA LoRAs are not supported, nothing was "
                              f"applied")
    fmt = _best_format(tensors)
    if fmt is None:
        raise CheckpointError(
            f"{source}: no key matches a known Wan DiT LoRA format ({', '.join(f.name for f in FORMATS)}); "
            f"first keys: {list(tensors)[:_SHOWN_KEYS]}. Is this a LoRA for another model (SD, Flux, "
            f"HunyuanVideo) or a text-encoder LoRA? Kinema applies LoRAs trained on Wan2.1/2.2 DiTs"
        )
    unmatched = tuple(fmt.unexplained(tensors))
    skip = set(unmatched)
    known = {key: value for key, value in tensors.items() if key not in skip}
    groups: dict[str, dict[str, torch.Tensor]] = {}
    spelled: dict[str, str] = {}  # module -> one of its keys as the file spells it
    for key, name in fmt.canonical_names(known, source).items():
        module, role = split_name(name)
        groups.setdefault(module, {})[role] = tensors[key]
        spelled[module] = key
    alphas = _peft_alphas(metadata, source) if fmt is DIFFUSERS else None
    lora = LoRA(source, fmt.name, unmatched=unmatched)
    for module, parts in groups.items():
        peft_alpha = alphas(diffusers_module(spelled[module])) if alphas else None
        _add_module(lora, module, parts, peft_alpha, source)
    return lora


def _best_format(tensors: dict[str, torch.Tensor]) -> Optional[KeyLayout]:
    """The format whose rules explain the most keys (None when none explains any)."""
    explained = {fmt: len(tensors) - len(fmt.unexplained(tensors)) for fmt in FORMATS}
    best = max(FORMATS, key=lambda fmt: explained[fmt])  # first of equals: FORMATS is in preference order
    return best if explained[best] else None


def _add_module(lora: LoRA, module: str, parts: dict[str, torch.Tensor], peft_alpha, source: str) -> None:
    down, up = parts.get(DOWN), parts.get(UP)
    if (down is None) != (up is None) or (down is None and (ALPHA in parts or UP_BIAS in parts)):
        present = sorted(parts)
        raise CheckpointError(
            f"{source}: layer {module} has {present} but a low-rank patch needs both its down (lora_down/lora_A) "
            f"and up (lora_up/lora_B) matrices; the file is incomplete or damaged"
        )
    if down is not None:
        if down.ndim != 2 or up.ndim != 2 or up.shape[1] != down.shape[0]:
            raise CheckpointError(
                f"{source}: layer {module}: down {tuple(down.shape)} and up {tuple(up.shape)} do not form a low-rank "
                f"pair [out, r] @ [r, in] (convolution LoRAs do not apply to the Wan DiT's linear layers)"
            )
        rank = down.shape[0]
        alpha = float(parts[ALPHA].item()) if ALPHA in parts else None
        scale = _scale(alpha, rank, peft_alpha)
        lora.low_rank[module] = LowRank(down, up, scale, parts.get(UP_BIAS))
    if WEIGHT_DIFF in parts:
        lora.diffs[f"{module}.weight"] = parts[WEIGHT_DIFF]
    if BIAS_DIFF in parts:
        lora.diffs[f"{module}.bias"] = parts[BIAS_DIFF]
    if MODULATION_DIFF in parts:
        lora.diffs[f"{module}.modulation"] = parts[MODULATION_DIFF]


def _scale(alpha: Optional[float], rank: int, peft_alpha: Optional[tuple[Optional[float], bool]]) -> float:
    """`alpha`: the file's own; `peft_alpha`: (lora_alpha, use_rslora) from a PEFT header."""
    if alpha is not None:
        return alpha / rank
    if peft_alpha is not None:
        alpha, rs_lora = peft_alpha
        if alpha is not None:
            return alpha / (math.sqrt(rank) if rs_lora else rank)
    return 1.0  # no alpha anywhere: diffusers/PEFT and ComfyUI both apply up @ down as is


def _peft_alphas(metadata: Optional[dict], source: str):
    """diffusers module name -> (lora_alpha, use_rslora) from the PEFT config diffusers stores in the file header."""
    raw = (metadata or {}).get(PEFT_METADATA_KEY)
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{source}: the '{PEFT_METADATA_KEY}' header is not valid JSON ({err})") from err
    config = {k.removeprefix("transformer."): v for k, v in config.items()}
    default = config.get("lora_alpha")
    patterns = config.get("alpha_pattern") or {}
    rs_lora = bool(config.get("use_rslora", False))

    def alpha_for(name: str):
        for pattern, value in patterns.items():
            # PEFT's rule: the pattern matches the module name or a dotted suffix of it.
            if re.match(rf"(.*\.)?({pattern})$", name):
                return float(value), rs_lora
        return (float(default) if default is not None else None), rs_lora

    return alpha_for

