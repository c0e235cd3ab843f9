"""`load_dit`: any Wan DiT file (official, ComfyUI, diffusers; 32/16-bit, fp8 or GGUF) -> WanDiT (or WanVACE / WanAnimate)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn

from ..checkpoints.gguf_dequant import QuantisedTensor
from ..checkpoints.io import CheckpointError, read_config_json, read_state_dict
from ..checkpoints.quant import FP8_DTYPES, normalise_quant_keys, quantize_fp8
from ..layers import Linear, fp8_matmul_fits, fp8_matmul_unsupported
from .config import infer_config
from .detect import choose_layout
from .animate import WanAnimate
from .config import DiTConfig
from .model import WanDiT
from .vace import WanVACE

# `dtype` choices besides None: a float dtype, or fp8 matmuls on GPUs that have them (the name is
# native ComfyUI's for the same option).
FP8_FAST = "fp8_e4m3fn_fast"
_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
WEIGHT_DTYPES = _FLOAT_DTYPES + (FP8_FAST,)
_GGUF_NOT_FP8 = ("GGUF weights are dequantised layer by layer and cannot run fp8 matmuls; choose weight dtype "
                 "'default' for a GGUF file")
GGUF_ARCHITECTURE = "wan"  # `general.architecture` of Wan GGUF files (ComfyUI-GGUF's converter)


def load_dit(
    path: str | os.PathLike,
    dtype: Union[torch.dtype, str, None] = None,
    device: str | torch.device = "cpu",
    attention: str = "sdpa",
    compute_dtype: Optional[torch.dtype] = None,
    num_heads: Optional[int] = None,
) -> WanDiT:
    """Load a Wan DiT.

    dtype: None keeps the stored dtypes; fp32/bf16/fp16 casts the weights, except fp8 ones: those
    stay fp8 (memory-mapped, with their scales) and are converted layer by layer as each layer
    runs, so for a file holding fp8 weights `dtype` is the precision they run in (the compute
    dtype, unless compute_dtype says otherwise). "fp8_e4m3fn_fast": fp8 matmuls (torch._scaled_mm)
    on CUDA GPUs of compute capability 8.9 or newer; Linear weights that are not e4m3fn yet are
    quantised to it with a per-tensor scale. compute_dtype: the dtype layers compute in; None =
    float32 on CPU, bfloat16 elsewhere. num_heads: only for models whose width is not 128 x heads
    (see `config.py`). GGUF files (ComfyUI-GGUF's layout) keep their quantised Linear weights
    quantised (memory-mapped) and dequantise them layer by layer, like fp8 ones; their other
    quantised tensors (small: norms, modulation, embeddings) are dequantised here.
    """
    if dtype is not None and dtype not in WEIGHT_DTYPES:
        raise ValueError(f"dtype must be None (keep the file's) or one of {WEIGHT_DTYPES}, got {dtype!r}")
    device = torch.device(device)
    if dtype == FP8_FAST:
        reason = fp8_matmul_unsupported(device)
        if reason is not None:
            raise ValueError(f"weight dtype {FP8_FAST!r} runs fp8 matmuls, which need an NVIDIA GPU of compute "
                             f"capability 8.9 or newer (RTX 40xx/50xx, L4, L40, H100, H200, B200): {reason}. "
                             f"Choose 'default' instead: fp8 weights are then upcast layer by layer")
    _refuse_two_expert_folder(Path(path))
    state = read_state_dict(path, subfolder_hints=("transformer",), gguf_architecture=GGUF_ARCHITECTURE)
    layout = choose_layout(state.keys(), state.source)
    tensors = layout.to_canonical(normalise_quant_keys(state.tensors), state.source)
    config = infer_config(tensors, state.source, num_heads=num_heads, config_json=read_config_json(state.source))
    quantised = any(isinstance(t, QuantisedTensor) or t.dtype in FP8_DTYPES for t in tensors.values())
    if dtype == FP8_FAST and any(isinstance(t, QuantisedTensor) for t in tensors.values()):
        raise ValueError(f"{state.source}: {_GGUF_NOT_FP8}")
    if isinstance(dtype, torch.dtype) and compute_dtype is None and quantised:
        compute_dtype = dtype
    if compute_dtype is None:
        compute_dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    with torch.device("meta"):
        model = dit_class(config)(config, attention=attention, compute_dtype=compute_dtype)
    tensors = _dequantize_unless_linear(tensors, model)
    if isinstance(dtype, torch.dtype):
        tensors = _cast_unquantised(tensors, dtype)
    try:
        # assign=True adopts the file's tensors (and dtypes) instead of copying into fresh fp32 ones.
        model.load_state_dict(tensors, strict=True, assign=True)
    except RuntimeError as err:
        raise CheckpointError(
            f"{state.source}: the tensors do not fit the Wan DiT their shapes describe ({config}): {err}. "
            f"The file is incomplete or an unknown variant; download it again or choose another file"
        ) from err
    model = model.requires_grad_(False)
    if dtype == FP8_FAST:
        _use_fp8_matmul(model, device)
    return model.to(device).eval()


def _cast_unquantised(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Floating tensors in `dtype`, except fp8 and GGUF-quantised weights and fp8 scales (kept as
    stored: a full-precision copy of a 14B fp8 model would not fit in memory)."""
    return {
        key: value if (isinstance(value, QuantisedTensor) or value.dtype in FP8_DTYPES
                       or key.endswith(".weight_scale") or not value.is_floating_point())
        else value.to(dtype)
        for key, value in tensors.items()
    }


def _dequantize_unless_linear(tensors: dict, model: nn.Module) -> dict:
    """GGUF-quantised tensors stay quantised where a Linear layer takes them as its weight (dequantised
    per call); the others (small: modulation tables, norms, embeddings) become float32 tensors now."""
    linear_weights = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, Linear)}
    return {key: value.dequantize() if isinstance(value, QuantisedTensor) and key not in linear_weights else value
            for key, value in tensors.items()}


def _use_fp8_matmul(model: WanDiT, device: torch.device) -> None:
    """Route every Linear whose shape torch._scaled_mm takes through it; weights that are not
    e4m3fn are quantised one layer at a time, on `device`, so no model-sized temporary exists."""
    if any(isinstance(m, Linear) and m.quant is not None for m in model.modules()):
        raise ValueError(_GGUF_NOT_FP8)
    for module in model.modules():
        if not isinstance(module, Linear) or not fp8_matmul_fits(module):
            continue
        if module.weight.dtype != torch.float8_e4m3fn:
            codes, scale = quantize_fp8(module.weight.to(device), module.weight_scale)
            module.weight = nn.Parameter(codes, requires_grad=False)
            module.weight_scale = scale
        module.fp8_matmul = True


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
