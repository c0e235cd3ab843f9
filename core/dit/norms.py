"""The DiT's normalisations, always computed in float32 (as the official model does) whatever
the stored dtype of their small weight vectors."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class LayerNorm32(nn.Module):
    """LayerNorm over the last dim in float32; returns float32 (the residual stream's dtype)."""

    def __init__(self, dim: int, eps: float, affine: bool):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim)) if affine else None
        self.bias = nn.Parameter(torch.zeros(dim)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), (self.dim,), weight, bias, self.eps)

    def modulated(self, x: torch.Tensor, shift: torch.Tensor, scale_plus_one: torch.Tensor) -> torch.Tensor:
        """`self(x) * scale_plus_one + shift` for a norm without affine; float32.

        A `[dim]` modulation (one timestep for every token) goes in as layer_norm's own affine
        step, one pass over x instead of two; `[B, Lt, dim]` rows take a separate addcmul.
        """
        if scale_plus_one.ndim == 1:
            return F.layer_norm(x.float(), (self.dim,), scale_plus_one, shift, self.eps)
        return torch.addcmul(shift, self(x), scale_plus_one)


class RMSNorm(nn.Module):
    """Wan's q/k RMSNorm over the whole width (all heads together); returns the input's dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor, in_place: bool = False) -> torch.Tensor:
        """`in_place=True` may overwrite x: pass it only a tensor nobody else reads (a fresh Linear output)."""
        weight = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        if x.dtype != torch.float32:
            # Lower precision: normalise in float32, round, then scale, as the official model does.
            normed = F.rms_norm(x.float(), (self.dim,), eps=self.eps).to(x.dtype)
            return normed * weight
        # float32: 1/rms from a norm reduction (no squared temporary), then two scalings; in place
        # they allocate nothing, and on CPU a fresh buffer costs more than a pass over it.
        inv_rms = (torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() / self.dim + self.eps).rsqrt()  # [..., 1]
        return x.mul_(inv_rms).mul_(weight) if in_place else x * inv_rms * weight
