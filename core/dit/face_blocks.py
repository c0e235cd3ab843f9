"""Wan-Animate's face path after the motion encoder: the temporal face encoder and the face adapter
blocks that let each latent frame's video tokens attend to that frame's motion tokens (wan_models.md 10.3)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...kernels.attention import attention
from ..layers import Linear, cast_like
from .norms import RMSNorm


class CausalConv1d(nn.Module):
    """Conv1d over time padded on the past side only, by repeating the first frame (as trained)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride)
        self.past = kernel - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, T] -> [N, C', T']
        x = F.pad(x, (self.past, 0), mode="replicate")
        return F.conv1d(x, cast_like(self.conv.weight, x), cast_like(self.conv.bias, x), stride=self.conv.stride)


class FaceEncoder(nn.Module):
    """Motion vectors per face frame [B, F, C] -> motion tokens per latent frame [B, F', heads + 1, dim].

    The two stride-2 convs compress time 4x like the VAE (F = 4k + 1 -> k + 1); each head becomes one
    token, and a learned padding token is appended to every frame.
    """

    def __init__(self, in_dim: int, hidden_dim: int, heads: int, dim: int):
        super().__init__()
        self.heads, self.hidden_dim = heads, hidden_dim
        self.conv1_local = CausalConv1d(in_dim, hidden_dim * heads, stride=1)
        self.conv2 = CausalConv1d(hidden_dim, hidden_dim, stride=2)
        self.conv3 = CausalConv1d(hidden_dim, hidden_dim, stride=2)
        self.out_proj = Linear(hidden_dim, dim)
        self.padding_tokens = nn.Parameter(torch.empty(1, 1, 1, dim))

    def forward(self, motion: torch.Tensor) -> torch.Tensor:
        batch = motion.shape[0]
        x = self.conv1_local(motion.transpose(1, 2))  # [B, heads * hidden, F]
        x = x.unflatten(1, (self.heads, self.hidden_dim)).flatten(0, 1)  # [B * heads, hidden, F]
        x = self._norm_act(x)
        x = self._norm_act(self.conv2(x))
        x = self._norm_act(self.conv3(x))  # [B * heads, hidden, F']
        x = self.out_proj(x.transpose(1, 2))  # [B * heads, F', dim]
        x = x.unflatten(0, (batch, self.heads)).transpose(1, 2)  # [B, F', heads, dim]
        padding = cast_like(self.padding_tokens, x).expand(batch, x.shape[1], 1, -1)
        return torch.cat([x, padding], dim=2)  # [B, F', heads + 1, dim]

    def _norm_act(self, x: torch.Tensor) -> torch.Tensor:  # LayerNorm over channels (no affine), SiLU
        normed = F.layer_norm(x.transpose(1, 2).float(), (self.hidden_dim,), eps=1e-6).to(x.dtype)
        return F.silu(normed).transpose(1, 2)


class FaceBlock(nn.Module):
    """Cross-attention from the video tokens of latent frame f to the motion tokens of frame f.

    No gate and no modulation: the caller adds the output to the residual stream.
    """

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.dim, self.num_heads, self.eps = dim, num_heads, eps
        self.linear1_kv = Linear(dim, 2 * dim)
        self.linear1_q = Linear(dim, dim)
        self.linear2 = Linear(dim, dim)
        self.q_norm = RMSNorm(dim // num_heads, eps)  # per head, unlike the DiT's q/k norms
        self.k_norm = RMSNorm(dim // num_heads, eps)

    def forward(self, x: torch.Tensor, motion: torch.Tensor, backend: str) -> torch.Tensor:
        # x [B, L, dim] float32 residual stream; motion [B, T, N, dim] compute dtype, T = latent frames
        batch, tokens, _ = x.shape
        frames, dtype = motion.shape[1], motion.dtype
        heads = (self.num_heads, -1)
        q = self.linear1_q(self._norm(x).to(dtype)).unflatten(-1, heads)  # [B, L, H, D]
        k, v = self.linear1_kv(self._norm(motion).to(dtype)).unflatten(-1, (2, *heads)).unbind(-3)  # [B, T, N, H, D]
        q = self.q_norm(q).unflatten(1, (frames, tokens // frames)).flatten(0, 1)  # [B*T, L/T, H, D]
        k = self.k_norm(k).flatten(0, 1)  # [B*T, N, H, D]
        out = attention(q, k, v.flatten(0, 1), backend=backend)  # [B*T, L/T, H, D]
        return self.linear2(out.reshape(batch, tokens, self.dim))  # [B, L, dim]

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), (self.dim,), eps=self.eps)


class FaceAdapter(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float, count: int):
        super().__init__()
        self.fuser_blocks = nn.ModuleList(FaceBlock(dim, num_heads, eps) for _ in range(count))
