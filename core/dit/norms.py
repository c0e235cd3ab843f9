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


class RMSNorm(nn.Module):
    """Wan's q/k RMSNorm over the whole width (all heads together); returns the input's dtype."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = F.rms_norm(x.float(), (self.dim,), eps=self.eps).to(x.dtype)
        weight = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
        return normed * weight
