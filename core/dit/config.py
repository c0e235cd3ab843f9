"""DiT hyper-parameters, read off the checkpoint's tensor shapes and named after the known presets.

Only the head count cannot be read from shapes (q/k/v are all `[dim, dim]`). Rule, first that applies:
1. an explicit `num_heads` given to the loader;
2. a `config.json` beside the checkpoint that describes a model of this width (diffusers:
   `num_attention_heads` x `attention_head_dim` == dim; official: `dim` == dim, `num_heads`);
3. dim / 128: every released Wan DiT uses head_dim 128, and ComfyUI assumes the same.
A width that is not a multiple of 128 with neither 1 nor 2 is an error (the model would be wrong).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from ..checkpoints.io import CheckpointError
from .animate_config import AnimateConfig, infer_animate_config

log = logging.getLogger(__name__)

WAN_HEAD_DIM = 128


@dataclass(frozen=True)
class DiTConfig:
    dim: int
    ffn_dim: int
    num_layers: int
    num_heads: int
    in_dim: int
    out_dim: int
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    image_dim: Optional[int] = None  # CLIP feature width (Wan2.1 I2V / FLF2V); None = no image branch
    image_tokens: Optional[int] = None  # FLF2V's learned position table length (2 x 257); None otherwise
    text_len: int = 512  # T5 context is zero-padded to this many rows before text_embedding
    eps: float = 1e-6
    vace_layers: Optional[tuple[int, ...]] = None  # VACE: main blocks that receive hint j after them
    vace_in_dim: Optional[int] = None  # VACE: channels of the control context (96)
    animate: Optional[AnimateConfig] = None  # Wan2.2 Animate: pose/face modules
    preset: str = "custom"

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def has_image_branch(self) -> bool:
        return self.image_dim is not None

    @property
    def is_vace(self) -> bool:
        return self.vace_layers is not None

    @property
    def cond_dim(self) -> int:
        """Channels the caller must concatenate as `y` (I2V: 4 mask + 16 image latents = 20)."""
        return self.in_dim - self.out_dim


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    dim: int
    ffn_dim: int
    num_layers: int
    in_dim: int
    out_dim: int
    image_dim: Optional[int] = None
    image_tokens: Optional[int] = None
    vace_layers: Optional[tuple[int, ...]] = None
    animate: bool = False

    def matches(self, c: DiTConfig) -> bool:
        return (
            (self.dim, self.ffn_dim, self.num_layers, self.in_dim, self.out_dim, self.image_dim, self.image_tokens,
             self.vace_layers, self.animate)
            == (c.dim, c.ffn_dim, c.num_layers, c.in_dim, c.out_dim, c.image_dim, c.image_tokens, c.vace_layers,
                c.animate is not None)
            and c.head_dim == WAN_HEAD_DIM
            and (c.text_dim, c.freq_dim, c.patch_size) == (4096, 256, (1, 2, 2))
        )


PRESETS = (
    Preset("wan2.1-t2v-1.3B", "Wan2.1 T2V-1.3B", 1536, 8960, 30, 16, 16),
    # Wan2.2's A14B experts have exactly the Wan2.1 14B shapes; shapes cannot tell them apart.
    Preset("wan-t2v-14B", "Wan2.1 T2V-14B (or T2I-14B) or a Wan2.2 T2V-A14B expert", 5120, 13824, 40, 16, 16),
    Preset("wan2.2-i2v-A14B", "a Wan2.2 I2V-A14B expert (no CLIP branch)", 5120, 13824, 40, 36, 16),
    Preset("wan2.1-i2v-14B", "Wan2.1 I2V-14B (480P/720P, CLIP image branch)", 5120, 13824, 40, 36, 16, 1280),
    Preset("wan2.1-flf2v-14B", "Wan2.1 FLF2V-14B (two CLIP images)", 5120, 13824, 40, 36, 16, 1280, 514),
    Preset("wan2.2-ti2v-5B", "Wan2.2 TI2V-5B", 3072, 14336, 30, 48, 48),
    Preset("wan2.1-vace-1.3B", "Wan2.1 VACE-1.3B", 1536, 8960, 30, 16, 16, vace_layers=tuple(range(0, 30, 2))),
    Preset("wan-vace-14B", "Wan2.1 VACE-14B (or a Wan2.2 VACE-Fun A14B expert)", 5120, 13824, 40, 16, 16,
           vace_layers=tuple(range(0, 40, 5))),
    Preset("wan2.2-animate-14B", "Wan2.2 Animate-14B", 5120, 13824, 40, 36, 16, 1280, animate=True),
)


def infer_config(
    tensors: Mapping[str, torch.Tensor],
    source: str,
    num_heads: Optional[int] = None,
    config_json: Optional[dict] = None,
) -> DiTConfig:
    """DiTConfig of a canonical (official-named) state dict; `source` names the file in errors."""

    def shape(key: str) -> torch.Size:
        if key not in tensors:
            raise CheckpointError(f"{source}: lacks the tensor {key!r} of every Wan DiT; the file is incomplete, "
                                  f"download it again")
        return tensors[key].shape

    dim = shape("head.modulation")[-1]
    patch_weight = shape("patch_embedding.weight")  # [dim, in_dim, pt, ph, pw]
    patch_size = tuple(int(s) for s in patch_weight[2:])
    patch_volume = patch_size[0] * patch_size[1] * patch_size[2]
    layers = {int(m.group(1)) for k in tensors if (m := re.match(r"blocks\.(\d+)\.", k))}
    if layers != set(range(len(layers))) or not layers:
        raise CheckpointError(f"{source}: transformer blocks are not numbered 0..N-1 (found {sorted(layers)[:8]}...)")
    config = DiTConfig(
        dim=dim,
        ffn_dim=shape("blocks.0.ffn.0.weight")[0],
        num_layers=len(layers),
        num_heads=_head_count(dim, source, num_heads, config_json),
        in_dim=patch_weight[1],
        out_dim=shape("head.head.weight")[0] // patch_volume,
        text_dim=shape("text_embedding.0.weight")[1],
        freq_dim=shape("time_embedding.0.weight")[1],
        patch_size=patch_size,
        image_dim=tensors["img_emb.proj.1.weight"].shape[1] if "img_emb.proj.1.weight" in tensors else None,
        image_tokens=tensors["img_emb.emb_pos"].shape[1] if "img_emb.emb_pos" in tensors else None,
        animate=infer_animate_config(tensors, len(layers), source),
        text_len=_text_len(dim, config_json),
    )
    if any(k.startswith("vace_") for k in tensors):
        if "vace_patch_embedding.weight" not in tensors:
            raise CheckpointError(f"{source}: this Wan VACE file lacks 'vace_patch_embedding.weight'; the file is "
                                  f"incomplete, download it again")
        vace_in_dim = tensors["vace_patch_embedding.weight"].shape[1]
        vace_layers = _vace_layers(tensors, len(layers), source, config_json)
        config = DiTConfig(**{**config.__dict__, "vace_layers": vace_layers, "vace_in_dim": vace_in_dim})
    return _name_preset(config)


def _vace_layers(tensors: Mapping[str, torch.Tensor], num_layers: int, source: str,
                 config_json: Optional[dict]) -> tuple[int, ...]:
    """Main blocks that take a VACE hint: `vace_layers` of config.json, else evenly spaced from 0.

    Shapes give only the number of VACE blocks; both released models space them evenly
    (1.3B: 15 of 30 layers -> 0, 2, ..., 28; 14B: 8 of 40 -> 0, 5, ..., 35), as ComfyUI assumes.
    """
    count = len({int(m.group(1)) for k in tensors if (m := re.match(r"vace_blocks\.(\d+)\.", k))})
    if "vace_blocks.0.before_proj.weight" not in tensors:
        raise CheckpointError(f"{source}: VACE block 0 lacks its before_proj; the file is incomplete, download it again")
    listed = (config_json or {}).get("vace_layers")
    if isinstance(listed, list) and len(listed) == count:
        layers = tuple(int(i) for i in listed)
    elif num_layers % count == 0:
        layers = tuple(range(0, num_layers, num_layers // count))
    else:
        raise CheckpointError(
            f"{source}: {count} VACE blocks for {num_layers} layers cannot be spaced evenly and no config.json "
            f"lists vace_layers; put the model's config.json beside the file"
        )
    if layers[0] != 0 or layers[-1] >= num_layers or list(layers) != sorted(set(layers)):
        raise CheckpointError(f"{source}: vace_layers {list(layers)} must rise from 0 and stay below {num_layers}")
    return layers


def _text_len(dim: int, config_json: Optional[dict]) -> int:
    """Rows the text context is padded to: 512 for every Wan release (the weights do not say;
    an official config.json of this model does)."""
    cfg = config_json or {}
    value = cfg.get("text_len", DiTConfig.text_len) if cfg.get("dim") == dim else DiTConfig.text_len
    if not isinstance(value, int) or value < 1:
        raise CheckpointError(f"config.json beside the DiT has text_len={value!r}; it must be a positive integer")
    return value


def _head_count(dim: int, source: str, num_heads: Optional[int], config_json: Optional[dict]) -> int:
    if num_heads is None and config_json:
        num_heads = _heads_from_config_json(dim, config_json)
    if num_heads is None:
        if dim % WAN_HEAD_DIM:
            raise CheckpointError(
                f"{source}: model width {dim} is not a multiple of Wan's head size {WAN_HEAD_DIM}, so the number "
                f"of attention heads is unknown; put the model's config.json beside the file or pass num_heads="
            )
        return dim // WAN_HEAD_DIM
    if dim % num_heads:
        raise CheckpointError(f"{source}: num_heads={num_heads} does not divide the model width {dim}")
    return num_heads


def _heads_from_config_json(dim: int, cfg: dict) -> Optional[int]:
    heads, head_dim = cfg.get("num_attention_heads"), cfg.get("attention_head_dim")
    if isinstance(heads, int) and isinstance(head_dim, int) and heads * head_dim == dim:
        return heads  # diffusers transformer config
    if cfg.get("dim") == dim and isinstance(cfg.get("num_heads"), int):
        return cfg["num_heads"]  # official WanModel config
    return None  # a config of some other model: not evidence about this one


def _name_preset(config: DiTConfig) -> DiTConfig:
    for preset in PRESETS:
        if preset.matches(config):
            return DiTConfig(**{**config.__dict__, "preset": preset.name})
    log.info("custom Wan DiT size (no released preset matches): %s", config)
    return config
