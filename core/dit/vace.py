"""Wan2.1 VACE: a T2V DiT plus a control branch whose blocks add hints to chosen main blocks (wan_models.md 9).

The control stream starts from the patch-embedded control context plus the embedded noisy
latents (`x0`), then runs its own blocks; block j's `after_proj` output is added (times the
strength) after main block `vace_layers[j]`. Official code runs the whole control branch before
the main stack; the control stream never reads the main stream after `x0`, so running control
block j just before it is needed gives the same numbers and keeps one stream in memory instead
of every hint (8 x [L, 5120] at 720p would be ~12 GB).
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn as nn

from ..layers import Linear
from .blocks import Block, BlockInputs
from .config import DiTConfig
from .context import PreparedContext
from .embeddings import PatchEmbedding
from .model import WanDiT

Strength = Union[float, Sequence[float]]


class VaceBlock(Block):
    """A main-structure block with the projections into (block 0 only) and out of the control stream."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int, eps: float, image_branch: bool, first: bool):
        super().__init__(dim, ffn_dim, num_heads, eps, image_branch)
        self.before_proj = Linear(dim, dim) if first else None
        self.after_proj = Linear(dim, dim)


class WanVACE(WanDiT):
    """`dit(x, t, context, vace_context=[B, 96, T, H, W], vace_strength=1.0)`; strength may be one per VACE block."""

    def __init__(self, config: DiTConfig, attention: str = "sdpa", compute_dtype: torch.dtype = torch.float32):
        super().__init__(config, attention=attention, compute_dtype=compute_dtype)
        c = config
        self.vace_patch_embedding = PatchEmbedding(c.vace_in_dim, c.dim, c.patch_size)
        self.vace_blocks = nn.ModuleList(
            VaceBlock(c.dim, c.ffn_dim, c.num_heads, c.eps, c.has_image_branch, first=j == 0)
            for j in range(len(c.vace_layers))
        )

    def _vace_blocks(self) -> Sequence[Block]:
        return self.vace_blocks

    def _transformer(self, tokens: torch.Tensor, context: PreparedContext, shared: BlockInputs,
                     grid: tuple[int, int, int], *, vace_context: torch.Tensor = None,
                     vace_strength: Strength = 1.0) -> torch.Tensor:
        strengths = self._strengths(vace_strength)
        control = shared.local(self._control_tokens(vace_context, tokens.shape[0], grid))  # [B, L, dim] float32
        hint_index = {layer: j for j, layer in enumerate(self.config.vace_layers)}
        x0 = tokens
        for i, (block, keys_values) in enumerate(zip(self.blocks, context.blocks)):
            tokens = block(tokens, keys_values, shared)
            j = hint_index.get(i)
            if j is not None:
                control, hint = self._control_step(j, control, x0, context, shared)
                tokens = tokens + hint * strengths[j]
        return tokens

    def _control_step(self, j: int, control: torch.Tensor, x0: torch.Tensor, context: PreparedContext,
                      shared: BlockInputs) -> tuple[torch.Tensor, torch.Tensor]:
        block, dtype = self.vace_blocks[j], self.compute_dtype
        if block.before_proj is not None:
            control = block.before_proj(control.to(dtype)).float() + x0
        control = block(control, context.vace_blocks[j], shared)
        return control, block.after_proj(control.to(dtype)).float()  # next stream, hint j  [B, L, dim]

    def _control_tokens(self, vace_context: torch.Tensor, batch: int, grid: tuple[int, int, int]) -> torch.Tensor:
        c = self.config
        if vace_context is None:
            raise ValueError(f"this DiT ({c.preset}) is a Wan VACE model: pass vace_context [B, {c.vace_in_dim}, T, H, W] "
                             f"(build it with core.sampling.vace_conditioning)")
        expected = (batch, c.vace_in_dim, grid[0] * c.patch_size[0], grid[1] * c.patch_size[1],
                    grid[2] * c.patch_size[2])
        if tuple(vace_context.shape) != expected:
            raise ValueError(f"vace_context shape {tuple(vace_context.shape)}; expected {list(expected)} (the "
                             f"control latents must cover the same frames and size as the sampled latents)")
        return self.vace_patch_embedding(vace_context.to(self.compute_dtype)).float()

    def _strengths(self, strength: Strength) -> list[float]:
        count = len(self.config.vace_layers)
        if isinstance(strength, (int, float)):
            return [float(strength)] * count
        strengths = [float(s) for s in strength]
        if len(strengths) != count:
            raise ValueError(f"vace_strength has {len(strengths)} values; this model has {count} VACE blocks "
                             f"(give one number or one per block)")
        return strengths
