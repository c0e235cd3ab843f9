"""ComfyUI "scaled fp8" files: per-tensor scales beside fp8 weights.

Two spellings exist: the legacy one (`<layer>.scale_weight`, `<layer>.scale_input`, a
`scaled_fp8` marker tensor) and the newer mixed-precision one (`<layer>.weight_scale`,
`<layer>.input_scale`, `<layer>.comfy_quant` JSON bytes). Both are normalised here to a single
canonical spelling, `<layer>.weight_scale` (float32 scalar), which `core.layers.Linear` consumes;
markers are dropped. Dequantised weight = fp8 weight (upcast) x weight_scale; the weights are never
dequantised up front (Linear applies the scale to its activations).
"""
from __future__ import annotations

from typing import Optional

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
            # Stored activation scales are calibrations for fp8 matmuls; Kinema upcasts weights, or
            # (fp8_e4m3fn_fast) scales each call's activations by their own max.
            continue
        if key.endswith(".scale_weight"):
            out[key[: -len(".scale_weight")] + ".weight_scale"] = value.float()
        elif key.endswith(".weight_scale"):
            out[key] = value.float()
        else:
            out[key] = value
    return out


def quantize_fp8(
    weight: torch.Tensor, scale: Optional[torch.Tensor] = None, dtype: torch.dtype = torch.float8_e4m3fn
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-tensor fp8 of `weight * scale`: `(codes, new_scale)` with codes x new_scale ~ the value and
    new_scale = max|value| / the format's largest value, so the whole fp8 range is used."""
    value = weight.float() if scale is None else weight.float() * scale.float()  # [out, in]
    new_scale = (value.abs().amax() / torch.finfo(dtype).max).clamp_min(torch.finfo(torch.float32).tiny)
    return (value / new_scale).to(dtype), new_scale.reshape(())
