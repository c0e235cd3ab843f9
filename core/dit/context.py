"""The text (and CLIP image) conditioning of one DiT, embedded once for a whole sampling run.

The prompt is the same at every step, so the text MLP and every block's cross-attention keys and
values are too: `dit.prepare_context(context, clip_fea)` computes them once, and `dit(x, t, prepared)`
reuses them at every step and window. The result is bit-identical to passing the raw context (the
same operations on the same inputs, only not repeated).

Invalidation is by lifetime, not by a hidden cache: a sampler prepares each prompt (positive,
negative, each prompt-schedule segment) once per run and drops the objects with the run. A prepared
context belongs to the model that made it (it holds that model's weights' outputs), and the model
refuses one made by another model, for another batch size, device or compute dtype.

Memory: two [B, 512, dim] tensors per block (plus two [B, 257, dim] with a CLIP image). For Wan 14B
(40 blocks, dim 5120) that is 40 x 2 x 512 x 5120 = 210 M values per prompt and batch row: 419 MB in
bf16 (839 MB fp32), so positive + negative hold ~0.84 GB in bf16; a CLIP image adds half as much again.
Wan 1.3B (30 blocks, dim 1536): 94 MB per prompt in bf16.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Optional

import torch

from .blocks import CrossKV


@dataclass(frozen=True, eq=False)
class PreparedContext:
    """What `WanDiT.prepare_context` returns; pass it as the DiT's `context` argument."""

    text: torch.Tensor  # [B, text_len, dim] compute dtype: the embedded (zero-padded) prompt
    image: Optional[torch.Tensor]  # [B, 257 or 514, dim] compute dtype: the embedded CLIP features, or None
    blocks: tuple[CrossKV, ...]  # one per main transformer block
    vace_blocks: tuple[CrossKV, ...]  # one per VACE control block; () for other models
    clip_fea: Optional[torch.Tensor] = field(repr=False)  # the features `image` was made from
    owner: weakref.ReferenceType = field(repr=False)  # the model that made it

    @property
    def batch(self) -> int:
        return self.text.shape[0]

    def check(self, model, batch: int, device: torch.device, clip_fea: Optional[torch.Tensor]) -> None:
        """Raise if this context cannot stand for the raw one in a call of `model` on `batch` samples."""
        again = "prepare the context again with this model: `dit.prepare_context(context, clip_fea)`"
        if self.owner() is not model:
            raise ValueError(f"this prepared context was made by another model (each model, e.g. each Wan2.2 expert, "
                             f"computes its own text keys and values); {again}")
        if self.batch != batch:
            raise ValueError(f"the prepared context holds {self.batch} prompt(s) for a batch of {batch}; {again}, "
                             f"with one prompt per sample")
        if self.text.device != device:
            raise ValueError(f"the prepared context is on {self.text.device}, the latents on {device}; "
                             f"prepare it with device={device}")
        if self.text.dtype != model.compute_dtype:
            raise ValueError(f"the prepared context was computed in {self.text.dtype}, the model now computes in "
                             f"{model.compute_dtype}; {again}")
        if clip_fea is not None and clip_fea is not self.clip_fea:
            raise ValueError("clip_fea differs from the CLIP features the context was prepared with; the image "
                             "keys and values are part of the prepared context: pass clip_fea to prepare_context "
                             "only (or the very same tensor here)")
