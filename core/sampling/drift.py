"""Drift control: pull a window's per-channel statistics towards those of a reference window (AdaIN)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

_EPS = 1e-6  # keeps a flat channel (std 0) from dividing by zero


@dataclass(frozen=True)
class ChannelStats:
    mean: torch.Tensor  # [B, C, 1, 1, 1]
    std: torch.Tensor  # [B, C, 1, 1, 1]

    @staticmethod
    def of(x: torch.Tensor) -> "ChannelStats":
        """Statistics of a latent clip [B, C, T, H, W] over time and space, per batch item and channel."""
        flat = x.flatten(2)  # [B, C, T*H*W]
        return ChannelStats(flat.mean(-1)[..., None, None, None], flat.std(-1, unbiased=False)[..., None, None, None])


def match_statistics(x: torch.Tensor, reference: ChannelStats, strength: float) -> torch.Tensor:
    """x [B, C, T, H, W] moved `strength` of the way to the reference's per-channel mean and std.

    strength 1 gives exactly the reference statistics; 0 returns x unchanged. Both mean and std
    move linearly with strength (the result is a lerp between x and its fully matched version).
    """
    if strength == 0:
        return x
    own = ChannelStats.of(x)
    matched = (x - own.mean) / (own.std + _EPS) * reference.std + reference.mean
    return x + strength * (matched - x)


def matched_velocity(xw: torch.Tensor, vw: torch.Tensor, sigma: float, references: dict, prompt,
                     strength: float) -> torch.Tensor:
    """A window's velocity with its clean estimate matched to the first window of the same prompt.

    `references` maps a prompt key to that first window's statistics (filled by the first window of each
    prompt, whose velocity comes back unchanged)."""
    x0 = xw - sigma * vw  # [B, C, L, H, W]
    if prompt not in references:
        references[prompt] = ChannelStats.of(x0)
        return vw
    return (xw - match_statistics(x0, references[prompt], strength)) / sigma
