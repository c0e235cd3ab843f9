"""`load_dit`: any Wan DiT file (official, ComfyUI, diffusers; 32/16-bit or fp8) -> WanDiT (or WanVACE / WanAnimate)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..checkpoints.io import CheckpointError, read_config_json, read_state_dict
from ..checkpoints.quant import dequantize, normalise_quant_keys
from .config import infer_config
from .detect import choose_layout
from .animate import WanAnimate
from .config import DiTConfig
from .model import WanDiT
from .vace import WanVACE

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def load_dit(
    path: str | os.PathLike,
    dtype: Optional[torch.dtype] = None,
    device: str | torch.device = "cpu",
    attention: str = "sdpa",
    compute_dtype: Optional[torch.dtype] = None,
    num_heads: Optional[int] = None,
) -> WanDiT:
    """Load a Wan DiT.

    dtype: None keeps the stored dtypes (fp8 stays fp8 with its scale, upcast per layer at run
    time); fp32/bf16/fp16 casts every weight (scaled fp8 is dequantised). compute_dtype: the
    dtype layers compute in; None = float32 on CPU, bfloat16 elsewhere. num_heads: only for
    models whose width is not 128 x heads (see `config.py`).
    """
    if dtype is not None and dtype not in _FLOAT_DTYPES:
        raise ValueError(f"dtype must be None (keep the file's) or one of {_FLOAT_DTYPES}, got {dtype}")
    _refuse_two_expert_folder(Path(path))
    state = read_state_dict(path, subfolder_hints=("transformer",))
    layout = choose_layout(state.keys(), state.source)
    tensors = layout.to_canonical(normalise_quant_keys(state.tensors), state.source)
    config = infer_config(tensors, state.source, num_heads=num_heads, config_json=read_config_json(state.source))
    if dtype is not None:
        tensors = dequantize(tensors, dtype)
    device = torch.device(device)
    if compute_dtype is None:
        compute_dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    with torch.device("meta"):
        model = dit_class(config)(config, attention=attention, compute_dtype=compute_dtype)
    try:
        # assign=True adopts the file's tensors (and dtypes) instead of copying into fresh fp32 ones.
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{state.source}: the tensors do not fit the Wan DiT their shapes describe ({config}): {err}. "
            f"The file is incomplete or an unknown variant; download it again or choose another file"
        ) from err
    return model.requires_grad_(False).to(device).eval()


def dit_class(config: DiTConfig) -> type[WanDiT]:
    """The model class a config describes: plain Wan DiT, VACE or Animate."""
    if config.is_vace:
        return WanVACE
    if config.animate is not None:
        return WanAnimate
    return WanDiT


def _refuse_two_expert_folder(p: Path) -> None:
    if p.is_dir() and (p / "high_noise_model").is_dir() and (p / "low_noise_model").is_dir():
        raise CheckpointError(
            f"{p}: this folder holds the two Wan2.2 A14B experts; load {p / 'high_noise_model'} and "
            f"{p / 'low_noise_model'} as two DiTs"
        )
