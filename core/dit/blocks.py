"""One Wan transformer block and the output head (official module names, so checkpoints load as is).

Precision follows the official recipe: the residual stream, norms and modulation are float32;
Linear layers and attention run in the compute dtype; a branch output (compute dtype) times its
float32 gate promotes back to float32 when added to the residual.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch
import torch.nn as nn

from ...kernels.attention import attention
from ...kernels.rope import apply_rope
from ..layers import Linear
from .norms import LayerNorm32, RMSNorm


class TimeModulation:
    """Per-block modulation looked up for every token without materialising `[B, L, 6, dim]`.

    The time MLPs run once per DISTINCT timestep (`values` `[U, k, dim]`); `index` `[B, Lt]` picks
    each sample's (Lt = 1) or each token's (Lt = L, Wan2.2 per-token timesteps) row.
    """

    def __init__(self, values: torch.Tensor, index: torch.Tensor):
        self.values = values  # [U, k, dim] float32
        self.index = index  # [B, Lt] long

    def table(self, parameter: torch.Tensor, scale_rows: tuple[int, ...]) -> "TimeModulation":
        """`parameter [1, k, dim] + values`, with 1 pre-added to the scale rows (saves a pass per use)."""
        table = parameter.float() + self.values  # [U, k, dim]
        table[:, list(scale_rows)] += 1.0
        return TimeModulation(table, self.index)

    def row(self, i: int) -> torch.Tensor:  # [dim] when all tokens share one timestep, else [B, Lt, dim]
        if self.values.shape[0] == 1:  # one distinct timestep: a plain vector broadcasts over [B, L, dim]
            return self.values[0, i]
        return self.values[:, i][self.index]


class BlockInputs(NamedTuple):
    """What every transformer block of one forward pass shares, in `Block.forward`'s argument order."""

    e0: TimeModulation
    text: torch.Tensor  # [B, 512, dim] compute dtype
    image: Optional[torch.Tensor]  # [B, 257 or 514, dim] compute dtype
    rope: torch.Tensor  # [L, D/2] complex rotations (kernels.rope.rope_rotation)
    backend: str
    # Per-layer self-attention choice, layer index -> (backend, options), e.g. sparse3d from a
    # kernels.sparse3d.SparseSchedule; None = `backend` everywhere (see WanDiT.set_attention_policy).
    self_attention: Optional[Callable[[int], tuple[str, dict]]] = None


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(
        self, h: torch.Tensor, rope: torch.Tensor, backend: str, options: Optional[dict] = None
    ) -> torch.Tensor:
        heads = (self.num_heads, -1)
        in_place = not torch.is_grad_enabled()  # the fresh q/k buffers are reused unless autograd needs them
        q = apply_rope(self.norm_q(self.q(h), in_place).unflatten(-1, heads), rope, in_place=in_place)  # [B, L, H, D]
        k = apply_rope(self.norm_k(self.k(h), in_place).unflatten(-1, heads), rope, in_place=in_place)  # [B, L, H, D]
        v = self.v(h).unflatten(-1, heads)  # [B, L, H, D]
        return self.o(attention(q, k, v, backend=backend, **(options or {})).flatten(2))  # [B, L, dim]


class CrossAttention(nn.Module):
    """Attention to the text (all 512 rows, no mask, as trained); Wan2.1 I2V adds an image-context
    attention sharing q, summed before the output projection."""

    def __init__(self, dim: int, num_heads: int, eps: float, image_branch: bool):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)
        if image_branch:
            self.k_img, self.v_img = Linear(dim, dim), Linear(dim, dim)
            self.norm_k_img = RMSNorm(dim, eps)

    def forward(
        self, h: torch.Tensor, text: torch.Tensor, image: Optional[torch.Tensor], backend: str
    ) -> torch.Tensor:
        heads = (self.num_heads, -1)
        in_place = not torch.is_grad_enabled()  # the fresh q/k buffers are reused unless autograd needs them
        q = self.norm_q(self.q(h), in_place).unflatten(-1, heads)  # [B, L, H, D]
        k = self.norm_k(self.k(text), in_place).unflatten(-1, heads)  # [B, 512, H, D]
        v = self.v(text).unflatten(-1, heads)
        out = attention(q, k, v, backend=backend)  # [B, L, H, D]
        if image is not None:
            k_img = self.norm_k_img(self.k_img(image)).unflatten(-1, heads)  # [B, 257, H, D]
            v_img = self.v_img(image).unflatten(-1, heads)
            out = out + attention(q, k_img, v_img, backend=backend)
        return self.o(out.flatten(2))  # [B, L, dim]


class Block(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float, image_branch: bool,
                 index: Optional[int] = None):
        super().__init__()
        self.index = index  # layer number the attention policy sees; None (e.g. VACE control blocks) = always dense
        self.norm1 = LayerNorm32(dim, eps, affine=False)
        self.self_attn = SelfAttention(dim, num_heads, eps)
        self.norm3 = LayerNorm32(dim, eps, affine=True)  # pre-cross-attention (diffusers calls it norm2)
        self.cross_attn = CrossAttention(dim, num_heads, eps, image_branch)
        self.norm2 = LayerNorm32(dim, eps, affine=False)  # pre-FFN
        self.ffn = nn.Sequential(Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.empty(1, 6, dim))

    def forward(
        self,
        x: torch.Tensor,  # [B, L, dim] float32 residual stream
        e0: TimeModulation,  # 6 rows: shift/scale/gate for self-attention, then for the FFN
        text: torch.Tensor,  # [B, 512, dim] compute dtype
        image: Optional[torch.Tensor],  # [B, 257 or 514, dim] compute dtype
        rope: torch.Tensor,
        backend: str,
        self_attention: Optional[Callable[[int], tuple[str, dict]]] = None,
    ) -> torch.Tensor:
        dtype = text.dtype
        mod = e0.table(self.modulation, scale_rows=(1, 4))
        h = self.norm1.modulated(x, mod.row(0), mod.row(1)).to(dtype)
        use_policy = self_attention is not None and self.index is not None
        self_backend, options = self_attention(self.index) if use_policy else (backend, {})
        # A new tensor: the caller's x stays intact (VACE keeps its block-0 input).
        x = torch.addcmul(x, self.self_attn(h, rope, self_backend, options), mod.row(2))
        # From here x is this block's own tensor: update it in place unless autograd records the
        # call (training), which needs the out-of-place form. Saves a fresh [B, L, dim] buffer each.
        in_place = not torch.is_grad_enabled()
        cross = self.cross_attn(self.norm3(x).to(dtype), text, image, backend)
        x = x.add_(cross) if in_place else x + cross
        h = self.norm2.modulated(x, mod.row(3), mod.row(4)).to(dtype)
        ffn = self._ffn(h, in_place)
        return x.addcmul_(ffn, mod.row(5)) if in_place else torch.addcmul(x, ffn, mod.row(5))

    def _ffn(self, h: torch.Tensor, in_place: bool) -> torch.Tensor:  # [B, L, dim] -> [B, L, dim]
        hidden = self.ffn[0](h)  # [B, L, ffn_dim], the block's largest tensor
        gelu = self.ffn[1]
        # In place at inference: allocating a second buffer this size costs as much as the GELU itself.
        hidden = torch.ops.aten.gelu_(hidden, approximate=gelu.approximate) if in_place else gelu(hidden)
        return self.ffn[2](hidden)


class Head(nn.Module):
    """Final modulated LayerNorm + Linear to `prod(patch) * out_dim`; modulated by `e`, not e0."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.norm = LayerNorm32(dim, eps, affine=False)
        self.head = Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.empty(1, 2, dim))

    def forward(self, x: torch.Tensor, e: TimeModulation) -> torch.Tensor:  # [B, L, dim] -> [B, L, out] fp32
        mod = e.table(self.modulation, scale_rows=(1,))
        # Official runs the head in float32 (an fp32 autocast island); it is small.
        return self.head(self.norm.modulated(x, mod.row(0), mod.row(1)))
