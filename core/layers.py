"""Layers whose stored weights may be in a lower precision than they compute in.

Weights stay as loaded (fp32, bf16, fp16, fp8, or fp8 with a per-tensor scale) and are upcast
to the input's dtype one layer at a time, so a 14B fp8 model costs fp8 memory.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Linear(nn.Linear):
    """nn.Linear that computes in the input's dtype whatever the weight's storage dtype.

    A scaled-fp8 checkpoint's `<prefix>weight_scale` (float32 scalar) is taken while loading the
    state dict and multiplied into the upcast weight at each call.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.register_buffer("weight_scale", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if weight.dtype != x.dtype or self.weight_scale is not None:
            weight = weight.to(x.dtype)
            if self.weight_scale is not None:
                weight = weight * self.weight_scale.to(x.dtype)
        bias = self.bias
        if bias is not None and bias.dtype != x.dtype:
            bias = bias.to(x.dtype)
        return F.linear(x, weight, bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "weight_scale"
        if key in state_dict:
            # Register the buffer, then let the default loader fill it, so strict loads count the key as used.
            scale = state_dict[key].float().reshape(())
            self._buffers["weight_scale"] = scale
            state_dict[key] = scale
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def cast_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`t` in `x`'s dtype (no copy when already equal)."""
    return t if t.dtype == x.dtype else t.to(x.dtype)
