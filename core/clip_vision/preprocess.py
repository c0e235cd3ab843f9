"""Wan's CLIP image preprocessing (official `CLIPModel.visual`): the whole picture, squashed (no crop) to the
tower's input size with bicubic interpolation (no antialias), then CLIP's mean/std normalisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# OpenAI CLIP's per-channel statistics, used by the open-clip ViT-H/14 Wan was trained with.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """RGB images [N, 3, H, W] in [-1, 1] (any size, any aspect) -> normalised pixels [N, 3, size, size] float32."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"CLIP vision preprocessing takes RGB images [N, 3, H, W] in [-1, 1], got shape "
                         f"{tuple(images.shape)}; convert a ComfyUI IMAGE [N, H, W, 3] with "
                         "image.permute(0, 3, 1, 2) * 2 - 1.")
    x = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False)
    x = x * 0.5 + 0.5  # [-1, 1] -> [0, 1]; bicubic overshoot is kept, as Wan keeps it
    mean = x.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std
