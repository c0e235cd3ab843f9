"""FreeNoise starting noise: every window begins from a reordering of the same noise frames.

The first window gets fresh seeded noise. Each later window keeps the frames it shares with the
previous one and takes, for its new frames, the noise of the frames that just left the window,
in a seeded random order. So every window holds exactly the first window's noise frames, each
once (no repeated frame inside a window), and neighbours agree on their overlap: long-range
correlation without copying whole clips.
"""
from __future__ import annotations

import torch

from .noise import seeded_noise
from .windows import Window

_SHUFFLE_SEED_OFFSET = 0x5EED  # a separate stream for the shuffles, so the base noise equals plain sampling's


def freenoise(shape: tuple[int, ...], seed: int, windows: list[Window], device="cpu", prefix: int = 0
              ) -> torch.Tensor:
    """Noise [B, C, T, H, W] for these windows; with one window it is exactly `seeded_noise(shape, seed)`.

    `prefix`: leading latent frames that every window sees (a branch's reference frames); the windows
    count frames after them, and the prefix's noise is drawn with the first window's.
    """
    b, c, frames, h, w = shape
    first = prefix + windows[0].length
    base = seeded_noise((b, c, first, h, w), seed)  # [B, C, P + L, H, W]
    if first == frames:
        return base.to(device)
    noise = torch.empty(shape, dtype=torch.float32)
    noise[:, :, :first] = base
    generator = torch.Generator(device="cpu").manual_seed((seed + _SHUFFLE_SEED_OFFSET) % 2**64)
    for previous, window in zip(windows, windows[1:]):
        new = prefix + torch.arange(previous.end, window.end)  # frames this window adds
        left = prefix + torch.arange(previous.start, window.start)  # frames that fell out of view
        order = left[torch.randperm(len(left), generator=generator)]
        noise[:, :, new] = noise[:, :, order]
    return noise.to(device)
