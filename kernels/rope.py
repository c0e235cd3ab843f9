"""3D rotary position embedding as Wan uses it.

The head dim is split into temporal / height / width parts (128 -> 44/42/42); each axis has
its own frequency ladder computed with that part's size; pairs are adjacent elements
(x[2i], x[2i+1]) rotated as (real, imag). Angles are built in float64 like the reference and
applied in float32 as a complex multiply.
"""
from __future__ import annotations

import torch


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Head-dim share of (t, h, w): 128 -> (44, 42, 42)."""
    spatial = 2 * (head_dim // 6)
    return head_dim - 2 * spatial, spatial, spatial


def _axis_angles(positions: torch.Tensor, dims: int, theta: float) -> torch.Tensor:
    inv_freq = 1.0 / theta ** (torch.arange(0, dims, 2, dtype=torch.float64) / dims)  # [dims/2]
    return positions.to(torch.float64)[:, None] * inv_freq[None, :]  # [n, dims/2]


def rope_cos_sin(
    grid: tuple[int, int, int], head_dim: int, device=None, theta: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin `[F*H*W, head_dim/2]` (float32) for tokens in row-major (f, h, w) order."""
    f, h, w = grid
    dt, dh, dw = rope_axis_dims(head_dim)
    at = _axis_angles(torch.arange(f), dt, theta)  # [f, dt/2]
    ah = _axis_angles(torch.arange(h), dh, theta)  # [h, dh/2]
    aw = _axis_angles(torch.arange(w), dw, theta)  # [w, dw/2]
    angles = torch.cat(
        [
            at[:, None, None, :].expand(f, h, w, -1),
            ah[None, :, None, :].expand(f, h, w, -1),
            aw[None, None, :, :].expand(f, h, w, -1),
        ],
        dim=-1,
    ).reshape(f * h * w, head_dim // 2)  # [L, D/2]
    return angles.cos().float().to(device), angles.sin().float().to(device)


def rope_rotation(
    grid: tuple[int, int, int], head_dim: int, device=None, theta: float = 10000.0
) -> torch.Tensor:
    """The rotations of `rope_cos_sin` as unit complex numbers `[F*H*W, head_dim/2]` (complex64):
    built once per grid, what `apply_rope` multiplies by."""
    cos, sin = rope_cos_sin(grid, head_dim, device=device, theta=theta)
    return torch.complex(cos, sin)


def apply_rope(x: torch.Tensor, rotation: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """Rotate adjacent pairs of `x` `[B, L, H, D]` by `rotation` `[L, D/2]` (`rope_rotation`);
    returns x's dtype.

    `in_place=True` may overwrite x (when it is contiguous float32): saves a buffer the size of x.
    """
    # Each pair as one complex number: the rotation is a single complex multiply, one pass over x
    # (the real-arithmetic form takes six half-size passes and a stack); same float32 numbers.
    pairs = torch.view_as_complex(x.float().contiguous().unflatten(-1, (-1, 2)))  # [B, L, H, D/2] complex64
    rotation = rotation[None, :, None, :]  # [1, L, 1, D/2]
    rotated = pairs.mul_(rotation) if in_place else pairs * rotation
    return torch.view_as_real(rotated).flatten(-2).to(x.dtype)
