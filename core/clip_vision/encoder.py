"""ClipVisionEncoder: images -> the CLIP features Wan's DiT reads (`clip_fea`)."""
from __future__ import annotations

import torch

from .preprocess import preprocess
from .tower import ClipVisionTower


class ClipVisionEncoder:
    """A loaded vision tower with Wan's preprocessing in front of it."""

    def __init__(self, tower: ClipVisionTower):
        self.tower = tower

    @property
    def config(self):
        return self.tower.config

    @property
    def device(self) -> torch.device:
        return self.tower.pos_embedding.device

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images [N, 3, H, W] in [-1, 1] -> penultimate-block tokens [N, 257, 1280] (ViT-H/14) float32,
        one row of tokens per image, on the CPU."""
        pixels = preprocess(images, self.config.image_size).to(self.device)  # [N, 3, 224, 224]
        return self.tower(pixels).cpu()
