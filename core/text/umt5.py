"""The umT5 encoder (Wan's text encoder), module names as in Wan's official checkpoint.

T5 conventions kept on purpose: RMSNorm without mean or bias, no 1/sqrt(d) attention scaling
(the scale is folded into the trained weights), a learned relative position bias. umT5 differs
from T5 v1.1 in that EVERY block owns its relative bias table instead of sharing block 0's.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import Linear
from ..progress import SILENT, Progress
from .config import UMT5Config


def relative_position_buckets(length: int, num_buckets: int, max_distance: int, device=None) -> torch.Tensor:
    """Bidirectional T5 bucket of (key position - query position) for every pair: long `[L, L]`.

    Half the buckets are for keys after the query; within each half, distances below a quarter
    of the buckets are exact and larger ones share log-spaced buckets up to `max_distance`.
    """
    positions = torch.arange(length, device=device)
    relative = positions[None, :] - positions[:, None]  # [Lq, Lk]
    half = num_buckets // 2
    exact = half // 2
    distance = relative.abs()
    # clamp(min=1) only keeps log() finite where the exact branch is taken anyway.
    log_scaled = torch.log(distance.float().clamp(min=1) / exact) / math.log(max_distance / exact) * (half - exact)
    far = (exact + log_scaled.long()).clamp(max=half - 1)
    return (relative > 0).long() * half + torch.where(distance < exact, distance, far)


class RMSNorm(nn.Module):
    """T5 layer norm: scale by the root mean square (computed in fp32), no mean, no bias."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


class TokenEmbedding(nn.Module):
    """Embedding table kept in its stored dtype (bf16/fp8 for the 1B-parameter XXL table); rows upcast on lookup."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, dim))
        self.register_buffer("weight_scale", None)

    def forward(self, ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:  # ids [B, L] -> [B, L, D]
        rows = self.weight[ids].to(dtype)
        return rows if self.weight_scale is None else rows * self.weight_scale.to(dtype)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + "weight_scale"
        if key in state_dict:  # same scaled-fp8 handling as core.layers.Linear
            scale = state_dict[key].float().reshape(())
            self._buffers["weight_scale"] = scale
            state_dict[key] = scale
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class RelativePositionBias(nn.Module):
    def __init__(self, num_buckets: int, num_heads: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.embedding = nn.Embedding(num_buckets, num_heads)

    def forward(self, length: int, dtype: torch.dtype) -> torch.Tensor:  # -> [1, H, L, L]
        buckets = relative_position_buckets(length, self.embedding.num_embeddings, self.max_distance, self.embedding.weight.device)
        return self.embedding(buckets).permute(2, 0, 1).unsqueeze(0).to(dtype)


class SelfAttention(nn.Module):
    def __init__(self, config: UMT5Config):
        super().__init__()
        self.num_heads, self.d_kv = config.num_heads, config.d_kv
        self.q = Linear(config.d_model, config.inner_dim, bias=False)
        self.k = Linear(config.d_model, config.inner_dim, bias=False)
        self.v = Linear(config.d_model, config.inner_dim, bias=False)
        self.o = Linear(config.inner_dim, config.d_model, bias=False)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        # x [B, L, D]; bias [B, H, L, L] = relative position bias + padding mask, added to the logits.
        b, length, _ = x.shape
        q, k, v = (proj(x).view(b, length, self.num_heads, self.d_kv).transpose(1, 2) for proj in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)  # [B, H, L, d_kv]
        return self.o(out.transpose(1, 2).reshape(b, length, -1))


class GatedGeluFeedForward(nn.Module):
    """fc2(fc1(x) * gelu_tanh(gate(x))), no biases."""

    def __init__(self, config: UMT5Config):
        super().__init__()
        # A Sequential so the state-dict names match Wan's file (`ffn.gate.0.weight`).
        self.gate = nn.Sequential(Linear(config.d_model, config.d_ff, bias=False), nn.GELU(approximate="tanh"))
        self.fc1 = Linear(config.d_model, config.d_ff, bias=False)
        self.fc2 = Linear(config.d_ff, config.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x) * self.gate(x))


class UMT5Block(nn.Module):
    def __init__(self, config: UMT5Config):
        super().__init__()
        self.norm1 = RMSNorm(config.d_model, config.eps)
        self.attn = SelfAttention(config)
        self.norm2 = RMSNorm(config.d_model, config.eps)
        self.ffn = GatedGeluFeedForward(config)
        self.pos_embedding = RelativePositionBias(config.num_buckets, config.num_heads, config.max_distance)

    def forward(self, x: torch.Tensor, key_mask_bias: torch.Tensor) -> torch.Tensor:
        # key_mask_bias [B, 1, 1, L]: 0 for real keys, the dtype's minimum for padding.
        bias = self.pos_embedding(x.shape[1], x.dtype) + key_mask_bias  # [B, H, L, L]
        x = _clamp_fp16(x + self.attn(self.norm1(x), bias))
        return _clamp_fp16(x + self.ffn(self.norm2(x)))


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    # T5 activations grow past fp16's range in late blocks; clamping (as T5 implementations do) keeps them finite.
    if x.dtype != torch.float16:
        return x
    limit = torch.finfo(torch.float16).max - 1000
    return x.clamp(-limit, limit)


class UMT5Encoder(nn.Module):
    def __init__(self, config: UMT5Config):
        super().__init__()
        self.config = config
        self.token_embedding = TokenEmbedding(config.vocab_size, config.d_model)
        self.blocks = nn.ModuleList(UMT5Block(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.d_model, config.eps)

    def forward(
        self,
        ids: torch.Tensor,  # long [B, L]
        mask: torch.Tensor,  # bool [B, L], True = real token
        dtype: torch.dtype = torch.float32,
        progress: Optional[Progress] = None,
        steps_done: int = 0,
        steps_total: Optional[int] = None,
    ) -> torch.Tensor:  # [B, L, d_model] in `dtype`
        """One progress step per block; `steps_done`/`steps_total` place this call inside a longer job."""
        progress = progress or SILENT
        total = steps_total or len(self.blocks)
        x = self.token_embedding(ids, dtype)  # [B, L, D]
        key_mask_bias = torch.zeros(mask.shape, dtype=dtype, device=ids.device)
        key_mask_bias = key_mask_bias.masked_fill(~mask, torch.finfo(dtype).min)[:, None, None, :]  # [B, 1, 1, L]
        for i, block in enumerate(self.blocks):
            x = block(x, key_mask_bias)
            progress.step(steps_done + i + 1, total)
        return self.norm(x)
