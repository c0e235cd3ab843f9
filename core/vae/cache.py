"""The causal temporal cache of one streaming pass through a Wan VAE encoder or decoder.

The Wan VAE is causal in time: every 3-tap temporal convolution sees the two frames before the
current chunk, and the temporal resamplers behave differently on the very first chunk. Instead
of a list indexed by call order with string sentinels, each layer keeps its own entry here,
keyed by the layer itself, and asks `first_chunk` when it needs to know where the stream starts.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn


class CausalCache:
    """Past frames each causal layer needs, for one stream (one video, one spatial tile)."""

    def __init__(self) -> None:
        self._past: dict[int, torch.Tensor] = {}
        self.chunks_done = 0

    @property
    def first_chunk(self) -> bool:
        """True while the first chunk of the stream is going through the network."""
        return self.chunks_done == 0

    def past(self, layer: nn.Module) -> Optional[torch.Tensor]:
        """The frames `layer` stored after the previous chunk (`[B, C, t, H, W]`), or None."""
        return self._past.get(id(layer))

    def keep(self, layer: nn.Module, frames: torch.Tensor) -> None:
        # A copy, so a slice of a big activation does not keep the whole activation alive.
        self._past[id(layer)] = frames.detach().clone()

    def end_chunk(self) -> None:
        """Mark the current chunk as done; call once per chunk after the network ran."""
        self.chunks_done += 1

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._past.values())


def last_frames(past: Optional[torch.Tensor], x: torch.Tensor, n: int) -> torch.Tensor:
    """The last `n` frames of the stream `past ++ x` (fewer at the very start)."""
    tail = x[:, :, -n:]
    if tail.shape[2] < n and past is not None:
        tail = torch.cat([past, tail], dim=2)[:, :, -n:]
    return tail
