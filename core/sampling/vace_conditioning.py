"""VACE control context (wan_models.md 9.3): control video + mask + reference images -> 96 channels.

- the control video is split by the binarised mask into the part to keep ("inactive", mask 0)
  and the part to generate ("reactive", mask 1), each VAE-encoded: 16 + 16 channels;
- the pixel mask is folded into latent resolution, one channel per pixel of each 8x8 cell: 64;
- each reference image, fitted onto a white canvas of the video size, becomes one latent frame
  prepended in time ([its latent, 16 zeros], mask zeros); those frames are dropped after sampling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class VaceConditioning:
    context: torch.Tensor  # [B, 96, n_refs + F_lat, h, w] for the DiT's vace_context
    reference_frames: int  # leading latent frames that hold reference images: drop them before decoding
    strength: float = 1.0

    def model_inputs(self) -> dict:
        return {"vace_context": self.context, "vace_strength": self.strength}


def vace_conditioning(
    vae,
    *,
    frames: int,
    height: int,
    width: int,
    control_video: Optional[torch.Tensor] = None,  # [1, 3, F, H, W] in [-1, 1]; None = nothing to follow
    mask: Optional[torch.Tensor] = None,  # [1, F, H, W] in [0, 1], 1 = generate; None = generate everything
    reference_images: Sequence[torch.Tensor] = (),  # each [3, h_i, w_i] in [-1, 1]
    strength: float = 1.0,
) -> VaceConditioning:
    stride = vae.config.spatial_stride
    if height % stride or width % stride or (frames - 1) % vae.config.temporal_stride:
        raise ValueError(f"VACE needs width/height multiples of {stride} and 4k+1 frames; got {width}x{height}, "
                         f"{frames} frames")
    device = getattr(vae, "device", torch.device("cpu"))
    video = _checked(control_video, (1, 3, frames, height, width), "control_video", device)
    if video is None:
        video = torch.zeros(1, 3, frames, height, width, device=device)  # mid-gray: nothing to follow
    pixel_mask = _checked(mask, (1, frames, height, width), "mask", device)
    if pixel_mask is None:
        pixel_mask = torch.ones(1, frames, height, width, device=device)
    generate = (pixel_mask > 0.5).to(video.dtype)[:, None]  # [1, 1, F, H, W]
    inactive = vae.encode(video * (1 - generate))  # [1, 16, F_lat, h, w]
    reactive = vae.encode(video * generate)
    mask_channels = fold_mask(pixel_mask[0], stride, inactive.shape[2])[None]  # [1, 64, F_lat, h, w]
    parts = [torch.cat([inactive, reactive, mask_channels.to(inactive)], dim=1)]
    for image in reversed(list(reference_images)):
        latent = vae.encode(white_canvas_fit(image.to(device), height, width)[None, :, None])  # [1, 16, 1, h, w]
        empty = torch.zeros_like(latent)
        parts.insert(0, torch.cat([latent, empty, mask_channels.new_zeros(1, stride * stride, *latent.shape[2:])], 1))
    return VaceConditioning(torch.cat(parts, dim=2), len(reference_images), strength)


def fold_mask(mask: torch.Tensor, stride: int, latent_frames: int) -> torch.Tensor:
    """Pixel mask [F, H, W] -> [stride^2, F_lat, H/stride, W/stride]; channel 8 * row + col within the cell,
    frames resampled (nearest-exact) to the latent frame count."""
    frames, height, width = mask.shape
    cells = mask.reshape(frames, height // stride, stride, width // stride, stride)
    cells = cells.permute(2, 4, 0, 1, 3).reshape(stride * stride, frames, height // stride, width // stride)
    size = (latent_frames, height // stride, width // stride)
    return F.interpolate(cells[None].float(), size=size, mode="nearest-exact")[0]


def white_canvas_fit(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[3, h, w] in [-1, 1] -> [3, height, width]: scaled to fit (bilinear, aspect kept), centred on white."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"a reference image must be [3, H, W] RGB in [-1, 1], got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if (h, w) == (height, width):
        return image.float()
    scale = min(height / h, width / w)
    new_h, new_w = int(h * scale), int(w * scale)
    resized = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
    canvas = torch.ones(3, height, width, device=image.device)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[:, top:top + new_h, left:left + new_w] = resized
    return canvas


def _checked(tensor: Optional[torch.Tensor], shape: tuple, name: str, device) -> Optional[torch.Tensor]:
    if tensor is None:
        return None
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(tensor.shape)}; expected {list(shape)} (frames and size of "
                         f"the video to generate)")
    return tensor.to(device, torch.float32)
