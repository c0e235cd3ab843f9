"""Synthetic moving content rendered analytically at any time, so any frame rate has exact ground truth.

A smooth textured background pans slowly while a textured disc (anti-aliased edge) glides across it;
both move by sub-pixel amounts per frame. Sums of a few sinusoids keep the texture band-limited, so
rendering at a fractional position is exact rather than resampled.
"""
from __future__ import annotations

import math

import torch


def _texture(x: torch.Tensor, y: torch.Tensor, waves) -> torch.Tensor:
    """Colour [H, W, 3] in 0..1 from sinusoids (fx, fy, phase, per-channel amplitudes) in pixel units."""
    out = torch.full((*x.shape, 3), 0.5, dtype=torch.float64)
    for fx, fy, phase, amps in waves:
        wave = torch.sin(2 * math.pi * (fx * x + fy * y) + phase)  # [H, W]
        out += wave[..., None] * torch.tensor(amps, dtype=torch.float64)
    return out


BACKGROUND = [(1 / 23, 1 / 31, 0.3, (0.2, 0.1, -0.15)), (-1 / 17, 1 / 13, 1.1, (0.12, -0.18, 0.12)),
              (1 / 11, 0.0, 2.0, (-0.1, 0.12, 0.15))]
DISC = [(1 / 9, 1 / 12, 0.7, (0.25, 0.2, -0.15)), (-1 / 14, 1 / 8, 2.4, (-0.15, 0.2, 0.12))]


def render(seconds: float, size: int = 96, background_speed=(20.0, 8.0), disc_speed=(60.0, 25.0)) -> torch.Tensor:
    """The scene at a time in seconds -> float32 [size, size, 3] in 0..1 (speeds in pixels per second)."""
    coords = torch.arange(size, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    background = _texture(x - background_speed[0] * seconds, y - background_speed[1] * seconds, BACKGROUND)
    cx = size * 0.25 + disc_speed[0] * seconds
    cy = size * 0.3 + disc_speed[1] * seconds
    radius = size * 0.22
    inside = torch.sigmoid((radius - torch.hypot(x - cx, y - cy)) * 2.0)[..., None]  # ~1 px soft edge
    disc = _texture(x - cx, y - cy, DISC) * torch.tensor([1.0, 0.8, 0.6], dtype=torch.float64)
    return (inside * disc + (1 - inside) * background).clamp(0, 1).float()


def render_clip(fps, seconds: float, **options) -> torch.Tensor:
    """Frames k / fps for k = 0 .. floor(seconds * fps) -> [N, size, size, 3]."""
    count = math.floor(seconds * fps) + 1
    return torch.stack([render(k / fps, **options) for k in range(count)])
