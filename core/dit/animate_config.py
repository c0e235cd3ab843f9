"""Hyper-parameters of Wan2.2 Animate's extra modules, read off the checkpoint's tensor shapes.

Official module layout (wan_models.md 10.3): `motion_encoder.enc.net_app.convs` = [1x1 conv in,
R down-sampling residual blocks, final conv], `motion_encoder.enc.fc.{0..}` linears,
`motion_encoder.dec.direction.weight`; `face_encoder.*`; `face_adapter.fuser_blocks.{0..N-1}`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional

import torch

from ..checkpoints.io import CheckpointError

MOTION = "motion_encoder.enc.net_app.convs"


@dataclass(frozen=True)
class AnimateConfig:
    motion_channels: tuple[int, ...]  # widths: the 1x1 input conv, then each residual block's output
    style_dim: int  # appearance code width (final conv output)
    motion_layers: int  # linears of enc.fc (the last maps style_dim -> motion_dim)
    motion_dim: int  # number of LIA motion directions (20)
    motion_out_dim: int  # motion vector width fed to the face encoder (512)
    final_kernel: int  # the final conv's kernel = the spatial size left after the residual blocks (4)
    face_hidden_dim: int  # face encoder width per head (1024)
    face_heads: int  # face encoder heads = motion tokens per latent frame, before the padding token (4)
    face_every: int  # a face adapter block runs after main blocks 0, k, 2k, ... (k = 5 in the release)
    pose_dim: int  # latent channels of the pose video (16)

    @property
    def face_size(self) -> int:
        """Side of the square face crops the motion encoder takes (512 in the release)."""
        return self.final_kernel * 2 ** (len(self.motion_channels) - 1)


def infer_animate_config(tensors: Mapping[str, torch.Tensor], num_layers: int, source: str) -> Optional[AnimateConfig]:
    """AnimateConfig of a canonical state dict, or None when it has no Animate modules."""
    if "pose_patch_embedding.weight" not in tensors:
        return None

    def shape(key: str) -> torch.Size:
        if key not in tensors:
            raise CheckpointError(f"{source}: this Wan Animate file lacks {key!r}; the file is incomplete, "
                                  f"download it again")
        return tensors[key].shape

    blocks = _numbered(tensors, rf"{re.escape(MOTION)}\.(\d+)\.conv1\.0\.weight")
    if blocks != list(range(1, len(blocks) + 1)):
        raise CheckpointError(f"{source}: motion encoder residual blocks are not numbered 1..R (found {blocks})")
    widths = [shape(f"{MOTION}.0.0.weight")[0]] + [shape(f"{MOTION}.{i}.conv2.1.weight")[0] for i in blocks]
    final = shape(f"{MOTION}.{len(blocks) + 1}.weight")  # [style_dim, C, k, k]
    fc = _numbered(tensors, r"motion_encoder\.enc\.fc\.(\d+)\.weight")
    direction = shape("motion_encoder.dec.direction.weight")  # [motion_out_dim, motion_dim]
    hidden = shape("face_encoder.conv2.conv.weight")[0]
    adapters = _numbered(tensors, r"face_adapter\.fuser_blocks\.(\d+)\.linear1_q\.weight")
    if not adapters or adapters != list(range(len(adapters))) or num_layers % len(adapters):
        raise CheckpointError(
            f"{source}: {len(adapters)} face adapter blocks cannot be spread evenly over {num_layers} layers; "
            f"the file is incomplete or an unknown Animate variant"
        )
    return AnimateConfig(
        motion_channels=tuple(int(w) for w in widths),
        style_dim=final[0],
        motion_layers=len(fc),
        motion_dim=direction[1],
        motion_out_dim=direction[0],
        final_kernel=final[-1],
        face_hidden_dim=hidden,
        face_heads=shape("face_encoder.conv1_local.conv.weight")[0] // hidden,
        face_every=num_layers // len(adapters),
        pose_dim=shape("pose_patch_embedding.weight")[1],
    )


def _numbered(tensors: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    compiled = re.compile(pattern)
    return sorted({int(m.group(1)) for k in tensors if (m := compiled.fullmatch(k))})
