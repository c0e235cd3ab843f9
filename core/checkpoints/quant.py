"""ComfyUI "scaled fp8" files: per-tensor scales beside fp8 weights.

Two spellings exist: the legacy one (`<layer>.scale_weight`, `<layer>.scale_input`, a
`scaled_fp8` marker tensor) and the newer mixed-precision one (`<layer>.weight_scale`,
`<layer>.input_scale`, `<layer>.comfy_quant` JSON bytes). Both are normalised here to a single
canonical spelling, `<layer>.weight_scale` (float32 scalar), which `core.layers.Linear` consumes;
markers are dropped. Dequantised weight = fp8 weight (upcast) x weight_scale.
"""
from __future__ import annotations

import torch

FP8_DTYPES = tuple(
    getattr(torch, name) for name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
    if hasattr(torch, name)
)

_MARKER_SUFFIXES = ("scaled_fp8", ".comfy_quant")


def normalise_quant_keys(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Returns a new dict: scales renamed to `.weight_scale`, unused input scales and markers dropped."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key == "scaled_fp8" or key.endswith(_MARKER_SUFFIXES):
            continue
        if key.endswith(".scale_input") or key.endswith(".input_scale"):
            # Activation scales only matter for fp8 matmuls; Kinema upcasts weights instead.
            continue
        if key.endswith(".scale_weight"):
            out[key[: -len(".scale_weight")] + ".weight_scale"] = value.float()
        elif key.endswith(".weight_scale"):
            out[key] = value.float()
        else:
            out[key] = value
    return out


def is_fp8(t: torch.Tensor) -> bool:
    return t.dtype in FP8_DTYPES


def dequantize(tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Fold every `.weight_scale` into its weight and cast all floating tensors to `dtype`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.endswith(".weight_scale"):
            continue
        scale = tensors.get(key[: -len(".weight")] + ".weight_scale") if key.endswith(".weight") else None
        if scale is not None:
            value = value.float() * scale.float()
        out[key] = value.to(dtype) if value.is_floating_point() else value
    return out
