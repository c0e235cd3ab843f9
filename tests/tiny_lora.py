"""Random Wan DiT LoRAs written in the key formats found in the wild, for the LoRA tests.

Patches are drawn once per module under official names (`random_patches`), then spelled in a
format: ComfyUI/kohya-with-dots (`diffusion_model.<official>.lora_down.weight` + alpha),
diffusers/PEFT (`transformer.<diffusers>.lora_A.weight`), musubi-tuner
(`lora_unet_<official with _>.lora_down.weight` + alpha) and lightx2v-style (ComfyUI names
plus `.diff` / `.diff_b` full patches).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from tiny_dit import _official_name

BLOCK_LINEARS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                 "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
GLOBAL_LINEARS = ("text_embedding.0", "text_embedding.2", "time_embedding.0", "time_embedding.2",
                  "time_projection.1", "head.head")


@dataclass(frozen=True)
class Patch:
    down: torch.Tensor  # [r, in]
    up: torch.Tensor  # [out, r]
    alpha: Optional[float]


def official_to_diffusers(model) -> dict[str, str]:
    """Official Linear module name -> diffusers module name, from the model's own keys."""
    return {_official_name(k)[: -len(".weight")]: k[: -len(".weight")]
            for k in model.state_dict() if k.endswith(".weight")}


def linear_shapes(model) -> dict[str, tuple[int, int]]:
    names = official_to_diffusers(model)
    state = model.state_dict()
    return {official: tuple(state[diffusers + ".weight"].shape) for official, diffusers in names.items()
            if state[diffusers + ".weight"].ndim == 2}


def random_patches(model, modules, *, rank: int = 4, alpha: Optional[float] = 8.0, seed: int = 0,
                   std: float = 0.05) -> dict[str, Patch]:
    g = torch.Generator().manual_seed(seed)
    shapes = linear_shapes(model)
    out = {}
    for name in modules:
        rows, cols = shapes[name]
        out[name] = Patch(torch.randn(rank, cols, generator=g) * std, torch.randn(rows, rank, generator=g) * std, alpha)
    return out


def block_modules(model) -> list[str]:
    return [f"blocks.{i}.{m}" for i in range(model.config.num_layers) for m in BLOCK_LINEARS]


def comfy_lora(patches: dict[str, Patch], prefix: str = "diffusion_model.", names=("lora_down", "lora_up")) -> dict:
    sd = {}
    for module, p in patches.items():
        sd[f"{prefix}{module}.{names[0]}.weight"] = p.down.clone()
        sd[f"{prefix}{module}.{names[1]}.weight"] = p.up.clone()
        if p.alpha is not None:
            sd[f"{prefix}{module}.alpha"] = torch.tensor(p.alpha)
    return sd


def peft_lora(patches: dict[str, Patch], model, prefix: str = "transformer.") -> dict:
    to_diffusers = official_to_diffusers(model)
    sd = {}
    for module, p in patches.items():
        sd[f"{prefix}{to_diffusers[module]}.lora_A.weight"] = p.down.clone()
        sd[f"{prefix}{to_diffusers[module]}.lora_B.weight"] = p.up.clone()
    return sd


def musubi_lora(patches: dict[str, Patch]) -> dict:
    sd = {}
    for module, p in patches.items():
        name = "lora_unet_" + module.replace(".", "_")
        sd[f"{name}.lora_down.weight"] = p.down.clone()
        sd[f"{name}.lora_up.weight"] = p.up.clone()
        sd[f"{name}.alpha"] = torch.tensor(p.alpha)
    return sd


def lightx2v_extras(model, *, seed: int = 1, std: float = 0.05) -> dict:
    """The full patches lightx2v distillation LoRAs carry beside their low-rank pairs: bias diffs
    of every block Linear, zero norm diffs, and a full head weight + bias diff."""
    g = torch.Generator().manual_seed(seed)
    shapes = linear_shapes(model)
    sd = {}
    for module in block_modules(model):
        sd[f"diffusion_model.{module}.diff_b"] = torch.randn(shapes[module][0], generator=g) * std
    dim = model.config.num_attention_heads * model.config.attention_head_dim
    for i in range(model.config.num_layers):
        for norm in ("self_attn.norm_q", "self_attn.norm_k", "cross_attn.norm_q", "cross_attn.norm_k"):
            sd[f"diffusion_model.blocks.{i}.{norm}.diff"] = torch.zeros(dim)
    sd["diffusion_model.head.head.diff"] = torch.randn(*shapes["head.head"], generator=g) * std
    sd["diffusion_model.head.head.diff_b"] = torch.randn(shapes["head.head"][0], generator=g) * std
    return sd
