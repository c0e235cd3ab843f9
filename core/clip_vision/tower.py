"""The CLIP ViT vision tower as Wan runs it: pre-norm blocks with exact GELU, read at the output of
the second-to-last block (no post-norm, no projection head)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..dit.norms import LayerNorm32
from ..layers import Linear, cast_like
from .config import ClipVisionConfig


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_qkv = Linear(width, 3 * width)  # rows: q, k, v
        self.proj = Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, D] -> [B, T, D]
        b, t, d = x.shape
        q, k, v = self.to_qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3x [B, h, T, d/h]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, h, T, d/h]
        return self.proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, c: ClipVisionConfig):
        super().__init__()
        self.norm1 = LayerNorm32(c.width, c.eps, affine=True)
        self.attn = Attention(c.width, c.heads)
        self.norm2 = LayerNorm32(c.width, c.eps, affine=True)
        self.mlp = nn.Sequential(Linear(c.width, c.mlp_width), nn.GELU(), Linear(c.mlp_width, c.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x).to(x.dtype))
        return x + self.mlp(self.norm2(x).to(x.dtype))


class ClipVisionTower(nn.Module):
    """`tower(pixels)`: normalised pixels [N, 3, S, S] -> penultimate-block tokens [N, 1 + (S/14)^2, D] float32.

    Only the blocks Wan reads are built: the file's last block, post-norm and head feed CLIP's pooled
    image embedding, which Wan never uses.
    """

    def __init__(self, config: ClipVisionConfig, compute_dtype: torch.dtype = torch.float32):
        super().__init__()
        c = self.config = config
        self.compute_dtype = compute_dtype
        self.patch_embedding = nn.Conv2d(3, c.width, c.patch, stride=c.patch, bias=False)  # no bias: pre-norm ViT
        self.cls_embedding = nn.Parameter(torch.empty(1, 1, c.width))
        self.pos_embedding = nn.Parameter(torch.empty(1, c.tokens, c.width))
        self.pre_norm = LayerNorm32(c.width, c.eps, affine=True)
        self.transformer = nn.ModuleList(Block(c) for _ in range(c.layers - 1))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        c = self.config
        if pixels.dim() != 4 or pixels.shape[1:] != (3, c.image_size, c.image_size):
            raise ValueError(f"CLIP vision takes preprocessed pixels [N, 3, {c.image_size}, {c.image_size}], got "
                             f"{tuple(pixels.shape)}; run them through clip_vision.preprocess first.")
        x = pixels.to(self.compute_dtype)
        weight = cast_like(self.patch_embedding.weight, x)
        x = F.conv2d(x, weight, stride=c.patch).flatten(2).transpose(1, 2)  # [N, (S/p)^2, D]
        cls = cast_like(self.cls_embedding, x).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + cast_like(self.pos_embedding, x)  # [N, T, D]
        x = self.pre_norm(x).to(self.compute_dtype)
        for block in self.transformer:
            x = block(x)
        return x.float()
