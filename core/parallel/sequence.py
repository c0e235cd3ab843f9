"""Sequence parallel: each rank of the `sequence` axis holds one contiguous slice of a DiT call's tokens.

`SequenceSplit` sits on the model (`WanDiT.sequence_split`); per call `plan(L, unit)` gives the
`TokenSlice` the model uses to cut its whole-sequence tensors (tokens, RoPE table, per-token t,
VACE hints, Animate pose and face frames), to run self-attention across the ranks and to gather
the head's output once. Slices may be uneven (L need not divide by the rank count): the
collectives take per-rank sizes, so nothing is padded and nothing needs masking.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist

from . import ring, ulysses


def slice_sizes(units: int, ranks: int) -> list[int]:
    """Units per rank, contiguous and as even as possible (the first ranks take one more)."""
    return [units // ranks + (r < units % ranks) for r in range(ranks)]


class SequenceSplit:
    """The sequence axis of a run: its process group, this rank in it, and how attention crosses ranks."""

    def __init__(self, group: dist.ProcessGroup, mode: str, num_heads: int):
        self.group = group
        self.mode = mode  # "ulysses" or "ring"
        self.ranks = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        if mode == "ulysses" and num_heads % self.ranks:
            raise ValueError(
                f"Ulysses sequence parallel gives each of its {self.ranks} ranks an equal share of the attention "
                f"heads, but this model has {num_heads} heads, which {self.ranks} does not divide; use ring="
                f"{self.ranks} instead (any head count), or a Ulysses size that divides {num_heads}")

    def plan(self, num_tokens: int, unit: int = 1) -> "TokenSlice":
        """The slice of this call's `num_tokens` tokens on this rank; boundaries fall on multiples of `unit`."""
        if num_tokens % unit or num_tokens // unit < self.ranks:
            what = "tokens" if unit == 1 else f"frames of {unit} tokens"
            raise ValueError(f"a sequence of {num_tokens // unit} {what} cannot be split over {self.ranks} ranks "
                             f"(each needs at least one); use fewer sequence-parallel ranks or a longer video")
        sizes = [n * unit for n in slice_sizes(num_tokens // unit, self.ranks)]
        return TokenSlice(self, sizes, unit)


class TokenSlice:
    """One DiT call's split: rank r holds tokens [starts[r], starts[r] + sizes[r])."""

    def __init__(self, split: SequenceSplit, sizes: Sequence[int], unit: int):
        self.split, self.sizes, self.unit = split, list(sizes), unit
        self.start = sum(self.sizes[: split.rank])
        self.length = self.sizes[split.rank]

    def local(self, x: torch.Tensor, dim: int = 1) -> torch.Tensor:
        """This rank's tokens of a whole-sequence tensor (a view)."""
        return x.narrow(dim, self.start, self.length)

    def local_frames(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, ...] per latent frame -> the frames this rank's tokens are (slices hold whole frames)."""
        if self.unit == 1:
            raise ValueError("this model's sequence slices may cut frames; it cannot take per-frame inputs")
        return x.narrow(1, self.start // self.unit, self.length // self.unit)

    def local_timesteps(self, t):
        """Per-token timesteps [B, L] (Wan2.2 TI2V) -> this rank's; per-sample t passes unchanged."""
        t = torch.as_tensor(t)
        return self.local(t) if t.ndim == 2 else t

    def attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str,
                  options: dict) -> torch.Tensor:  # [B, L_r, H, D] each -> [B, L_r, H, D]
        if self.split.mode == "ring":
            return ring.ring_attention(q, k, v, self.sizes, self.split.group, backend, options)
        return ulysses.ulysses_attention(q, k, v, self.sizes, self.split.group, backend, options)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L_r, C] on every rank -> [B, L, C] on every rank (the same bits everywhere)."""
        group, longest = self.split.group, max(self.sizes)
        padded = torch.nn.functional.pad(x, (0, 0, 0, longest - x.shape[1])).contiguous()  # equal sizes to gather
        parts = [torch.empty_like(padded) for _ in self.sizes]
        dist.all_gather(parts, padded, group=group)
        return torch.cat([part[:, :n] for part, n in zip(parts, self.sizes)], dim=1)
