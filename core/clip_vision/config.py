"""Hyper-parameters of a CLIP vision tower (ViT), read from the tensor shapes of a checkpoint."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import torch

from ..checkpoints.io import CheckpointError

_BLOCK_KEY = re.compile(r"^transformer\.(\d+)\.")
# Head counts are stored in no weight file. The released CLIP ViTs by width: B (64-wide heads), L (64),
# H (80: the tower Wan uses), bigG (104). Other widths (small test towers) get 64-wide heads.
HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 16, 1664: 16}


@dataclass(frozen=True)
class ClipVisionConfig:
    width: int  # token width; ViT-H/14: 1280
    layers: int  # blocks in the file; Wan reads the output of all but the last
    heads: int  # not stored in any weight file (HEADS_BY_WIDTH); ViT-H: 16 heads of 80
    patch: int  # ViT-H/14: 14
    image_size: int  # ViT-H/14: 224 -> 16 x 16 patches + 1 class token = 257 tokens
    mlp_width: int  # ViT-H: 5120
    eps: float = 1e-5

    @property
    def tokens(self) -> int:
        return (self.image_size // self.patch) ** 2 + 1

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], source: str, heads: Optional[int] = None
                        ) -> "ClipVisionConfig":
        """The config of canonical (Wan official, `visual.` stripped) tensors; `heads` from a config.json when the
        file has one, else by width."""
        def shape(key: str) -> torch.Size:
            if key not in tensors:
                raise CheckpointError(f"{source}: CLIP vision tensor {key!r} is missing; the file is incomplete")
            return tensors[key].shape

        width, _, patch, _ = shape("patch_embedding.weight")
        positions = shape("pos_embedding")[1]
        grid = round((positions - 1) ** 0.5)
        if grid * grid + 1 != positions:
            raise CheckpointError(f"{source}: {positions} position embeddings are not a square grid plus a class "
                                  "token; this is not a CLIP ViT vision tower")
        layers = sorted({int(m.group(1)) for k in tensors if (m := _BLOCK_KEY.match(k))})
        if not layers or layers != list(range(len(layers))):
            raise CheckpointError(f"{source}: CLIP vision blocks are missing or not numbered 0..N-1 "
                                  f"(found {layers[:8]}...)")
        heads = heads or HEADS_BY_WIDTH.get(width) or max(1, width // 64)
        if width % heads:
            raise CheckpointError(f"{source}: CLIP vision width {width} does not split into {heads} heads")
        return cls(width=width, layers=len(layers), heads=heads, patch=patch, image_size=grid * patch,
                   mlp_width=shape("transformer.0.mlp.0.weight")[0])


# The vision tower of open-clip xlm-roberta-large-vit-huge-14 (Wan2.1 I2V / FLF2V, Wan2.2 Animate).
VIT_H_14 = ClipVisionConfig(width=1280, layers=32, heads=16, patch=14, image_size=224, mlp_width=5120)
