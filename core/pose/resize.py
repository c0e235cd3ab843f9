"""Picture resizing for the pose path (backgrounds to the pose canvas, face crops to 512 x 512), on any device.

torch's bilinear interpolation with `antialias=True` is used, not kornia's `resize(antialias=True)`:
torch shrinks with Pillow's reducing filter (a triangle as wide as the scale factor; it matches
Pillow within one grey level), while kornia blurs with a Gaussian of sigma (factor - 1) / 2 first,
which barely filters the common 1-2x reductions (at 1.5x stripes finer than the new pixels alias as
strongly as with no filter at all, about 3x more than with Pillow's) and departs from Pillow by
tens of grey levels.
"""
from __future__ import annotations

import torch


def resize_pictures(pictures: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """`[N, H, W, C]` pictures (any dtype, any device) -> `[N, height, width, C]` float32, values kept (0..255 stays).

    Bilinear with pixel centres aligned (align_corners=False), antialiased when shrinking.
    """
    if pictures.dim() != 4:
        raise ValueError(f"pictures must be [N, H, W, C], got shape {list(pictures.shape)}")
    planes = pictures.permute(0, 3, 1, 2).float()  # [N, C, H, W]
    if planes.shape[-2:] != (height, width):
        planes = torch.nn.functional.interpolate(planes, size=(height, width), mode="bilinear", align_corners=False,
                                                 antialias=True)  # [N, C, height, width]
    return planes.permute(0, 2, 3, 1)


def to_uint8(pictures: torch.Tensor) -> torch.Tensor:
    """Float pictures in 0..255 -> uint8, rounded to the nearest level."""
    return pictures.round().clamp(0, 255).to(torch.uint8)
