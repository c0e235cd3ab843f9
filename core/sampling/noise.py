"""Seeded starting noise, the same on every run and every device."""
from __future__ import annotations

import torch


def seeded_noise(shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal float32 noise drawn on the CPU from `seed`, then moved to `device`.

    The CPU generator makes the draw independent of the GPU type (official Wan draws on
    CUDA, so its noise for a seed differs from ours, by design).
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(device)
