"""One Wan transformer block and the output head (official module names, so checkpoints load as is).

Precision follows the official recipe: the residual stream, norms and modulation are float32;
Linear layers and attention run in the compute dtype; a branch output (compute dtype) times its
float32 gate promotes back to float32 when added to the residual.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import torch
import torch.nn as nn

from ...kernels.attention import attention
from ...kernels.linear import gelu_of_fresh
from ...kernels.rope import apply_rope
from ..layers import Linear, chunked_feed_forward, feed_forward_chunk
from .compile import compiled
from .norms import LayerNorm32, RMSNorm


# The rows of the modulation tables (official `modulation`, diffusers `scale_shift_table`), in stored
# order. diffusers calls the block's rows shift_msa, scale_msa, gate_msa, c_shift_msa, c_scale_msa,
# c_gate_msa. A row named "*scale" holds scale + 1 once looked up (see `TimeModulation.table`).
BLOCK_MODULATION = ("attn_shift", "attn_scale", "attn_gate", "ffn_shift", "ffn_scale", "ffn_gate")
HEAD_MODULATION = ("shift", "scale")


class TimeModulation:
    """Per-block modulation looked up for every token without materialising `[B, L, 6, dim]`.

    The time MLPs run once per DISTINCT timestep (`values` `[U, k, dim]`); `index` `[B, Lt]` picks
    each sample's (Lt = 1) or each token's (Lt = L, Wan2.2 per-token timesteps) row. A table made
    by `table` also knows its rows' names (`mod["attn_gate"]`).
    """

    def __init__(self, values: torch.Tensor, index: torch.Tensor, names: tuple[str, ...] = ()):
        self.values = values  # [U, k, dim] float32
        self.index = index  # [B, Lt] long
        self.names = names

    def table(self, parameter: torch.Tensor, names: tuple[str, ...]) -> "TimeModulation":
        """`parameter [1, k, dim] + values`, rows named `names`, with 1 pre-added to the scale rows
        (saves a pass per use)."""
        table = parameter.float() + self.values  # [U, k, dim]
        table[:, [i for i, name in enumerate(names) if name.endswith("scale")]] += 1.0
        return TimeModulation(table, self.index, names)

    def __getitem__(self, name: str) -> torch.Tensor:  # [dim] when all tokens share one timestep, else [B, Lt, dim]
        i = self.names.index(name)
        if self.values.shape[0] == 1:  # one distinct timestep: a plain vector broadcasts over [B, L, dim]
            return self.values[0, i]
        return self.values[:, i][self.index]


class BlockInputs(NamedTuple):
    """What every transformer block of one forward pass shares (the text keys and values are per block)."""

    e0: TimeModulation
    rope: torch.Tensor  # [L, D/2] complex rotations (kernels.rope.rope_rotation)
    backend: str
    # Per-layer self-attention choice, layer index -> (backend, options), e.g. sparse3d from a
    # kernels.sparse3d.SparseSchedule; None = `backend` everywhere (see WanDiT.set_attention_policy).
    self_attention: Optional[Callable[[int], tuple[str, dict]]] = None
    # Sequence parallel (core/parallel): this rank's slice of the tokens, which also runs self-attention
    # across the ranks; None = this process holds the whole sequence.
    sequence: Optional[Any] = None

    def local(self, x: torch.Tensor) -> torch.Tensor:
        """A whole-sequence tensor [B, L, ...] -> the tokens this rank holds."""
        return x if self.sequence is None else self.sequence.local(x)

    def local_frames(self, x: torch.Tensor) -> torch.Tensor:
        """A per-latent-frame tensor [B, T, ...] -> the frames this rank's tokens cover (whole frames)."""
        return x if self.sequence is None else self.sequence.local_frames(x)

    def self_attention_for(self, layer: Optional[int]) -> tuple[str, dict]:
        """(backend, options) of one layer's self-attention; layer None (VACE control blocks) = dense."""
        if self.self_attention is None or layer is None:
            return self.backend, {}
        return self.self_attention(layer)


class CrossKV(NamedTuple):
    """One block's cross-attention keys and values (after norm_k), the same at every step of a run."""

    k: torch.Tensor  # [B, 512, H, D] compute dtype
    v: torch.Tensor  # [B, 512, H, D]
    k_img: Optional[torch.Tensor] = None  # [B, 257 or 514, H, D], Wan2.1 I2V / FLF2V only
    v_img: Optional[torch.Tensor] = None


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(
        self, h: torch.Tensor, rope: torch.Tensor, backend: str, options: Optional[dict] = None, sequence=None
    ) -> torch.Tensor:
        heads = (self.num_heads, -1)
        in_place = not torch.is_grad_enabled()  # the fresh q/k buffers are reused unless autograd needs them
        q = apply_rope(self.norm_q(self.q(h), in_place).unflatten(-1, heads), rope, in_place=in_place)  # [B, L, H, D]
        k = apply_rope(self.norm_k(self.k(h), in_place).unflatten(-1, heads), rope, in_place=in_place)  # [B, L, H, D]
        v = self.v(h).unflatten(-1, heads)  # [B, L, H, D]
        if sequence is not None:  # this rank holds some tokens: attend across the ranks (core/parallel)
            return self.o(sequence.attention(q, k, v, backend, options or {}).flatten(2))  # [B, L, dim]
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

    def keys_values(self, text: torch.Tensor, image: Optional[torch.Tensor]) -> CrossKV:
        """Keys and values of the text [B, 512, dim] (and image [B, N, dim]) context, compute dtype."""
        heads = (self.num_heads, -1)
        in_place = not torch.is_grad_enabled()  # the fresh k buffer is reused unless autograd needs it
        k = self.norm_k(self.k(text), in_place).unflatten(-1, heads)  # [B, 512, H, D]
        v = self.v(text).unflatten(-1, heads)
        if image is None:
            return CrossKV(k, v)
        k_img = self.norm_k_img(self.k_img(image)).unflatten(-1, heads)  # [B, 257, H, D]
        return CrossKV(k, v, k_img, self.v_img(image).unflatten(-1, heads))

    def forward(self, h: torch.Tensor, context: CrossKV, backend: str) -> torch.Tensor:
        in_place = not torch.is_grad_enabled()  # the fresh q buffer is reused unless autograd needs it
        q = self.norm_q(self.q(h), in_place).unflatten(-1, (self.num_heads, -1))  # [B, L, H, D]
        out = attention(q, context.k, context.v, backend=backend)  # [B, L, H, D]
        if context.k_img is not None:
            out = out + attention(q, context.k_img, context.v_img, backend=backend)
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
        self.modulation = nn.Parameter(torch.empty(1, len(BLOCK_MODULATION), dim))
        self.compile_backend: Optional[str] = None  # torch.compile backend of `step` (WanDiT.compile_blocks); None = eager

    def forward(self, x: torch.Tensor, context: CrossKV, shared: BlockInputs) -> torch.Tensor:
        """x [B, L, dim] float32 residual stream -> the next one; `context`: this block's text keys/values."""
        self_backend, options = shared.self_attention_for(self.index)
        # The layer index is read here, outside `step`: compiled, `step` never sees it, so one compiled
        # graph serves every block of the same shapes instead of one specialised graph per layer.
        step = Block.step if self.compile_backend is None else compiled(Block.step, self.compile_backend)
        return step(self, x, context, shared.e0, shared.rope, self_backend, options, shared.backend, shared.sequence)

    def step(
        self,
        x: torch.Tensor,  # [B, L, dim] float32 residual stream
        context: CrossKV,  # this block's text (and image) keys and values, compute dtype
        e0: TimeModulation,  # the BLOCK_MODULATION rows
        rope: torch.Tensor,
        self_backend: str,
        options: dict,
        cross_backend: str,
        sequence=None,  # BlockInputs.sequence
    ) -> torch.Tensor:
        dtype = context.k.dtype
        mod = e0.table(self.modulation, BLOCK_MODULATION)
        h = self.norm1.modulated(x, mod["attn_shift"], mod["attn_scale"]).to(dtype)
        # A new tensor: the caller's x stays intact (VACE keeps its block-0 input).
        x = torch.addcmul(x, self.self_attn(h, rope, self_backend, options, sequence), mod["attn_gate"])
        # From here x is this block's own tensor: update it in place unless autograd records the
        # call (training), which needs the out-of-place form. Saves a fresh [B, L, dim] buffer each.
        in_place = not torch.is_grad_enabled()
        cross = self.cross_attn(self.norm3(x).to(dtype), context, cross_backend)  # ungated
        x = x.add_(cross) if in_place else x + cross
        h = self.norm2.modulated(x, mod["ffn_shift"], mod["ffn_scale"]).to(dtype)
        ffn = self._ffn(h)
        return x.addcmul_(ffn, mod["ffn_gate"]) if in_place else torch.addcmul(x, ffn, mod["ffn_gate"])

    def _ffn(self, h: torch.Tensor) -> torch.Tensor:  # [B, L, dim] -> [B, L, dim]
        up, gelu, down = self.ffn
        chunk = feed_forward_chunk(up, down, h)
        if chunk is not None:  # plain Linears on the CPU (see core/layers.py)
            return chunked_feed_forward(up, down, h, gelu.approximate, chunk)
        return down(gelu_of_fresh(up(h), gelu.approximate))  # hidden [B, L, ffn_dim], the block's largest tensor


class Head(nn.Module):
    """Final modulated LayerNorm + Linear to `prod(patch) * out_dim`; modulated by `e`, not e0."""

    def __init__(self, dim: int, out_features: int, eps: float):
        super().__init__()
        self.norm = LayerNorm32(dim, eps, affine=False)
        self.head = Linear(dim, out_features)
        self.modulation = nn.Parameter(torch.empty(1, len(HEAD_MODULATION), dim))

    def forward(self, x: torch.Tensor, e: TimeModulation) -> torch.Tensor:  # [B, L, dim] -> [B, L, out] fp32
        mod = e.table(self.modulation, HEAD_MODULATION)
        # Official runs the head in float32 (an fp32 autocast island); it is small.
        return self.head(self.norm.modulated(x, mod["shift"], mod["scale"]))
