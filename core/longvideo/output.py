"""The streaming output chain: latents -> decode -> (frame transform, e.g. 16 -> 30 fps) -> crop -> mp4.

Only one decoded chunk (4 video frames per latent frame, plus whatever the transform holds back)
is in memory at a time, so a 2-minute 1080p video costs the memory of a few frames.
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Protocol, Union

import torch

from ..progress import SILENT, Progress
from ..video.writer import VideoWriter, as_fps


class FrameTransform(Protocol):
    """A streaming step on decoded frames (a frame interpolator, a restorer...).

    Frames are float [t, H, W, 3] in 0..1; `push` may hold frames back (an interpolator needs the
    next frame) and `finish` returns what is left at the end.
    """

    def output_fps(self, fps: Fraction) -> Fraction: ...

    def push(self, frames: torch.Tensor) -> torch.Tensor: ...

    def finish(self) -> torch.Tensor: ...


def centre_crop(frames: torch.Tensor, size: Optional[tuple[int, int]]) -> torch.Tensor:
    """[t, H, W, 3] -> [t, height, width, 3] from the middle (e.g. 1088 -> 1080 rows)."""
    if size is None:
        return frames
    height, width = size
    h, w = frames.shape[1:3]
    if height > h or width > w:
        raise ValueError(f"cannot crop {w}x{h} frames to {width}x{height}; the crop must be no larger than the video.")
    top, left = (h - height) // 2, (w - width) // 2
    return frames[:, top:top + height, left:left + width]


def write_video(vae, latents: torch.Tensor, path: Union[str, os.PathLike], fps=16, *,
                frame_transform: Optional[FrameTransform] = None, crop: Optional[tuple[int, int]] = None,
                tiling="auto", crf: int = 18, progress: Progress = SILENT) -> Path:
    """Decode one latent video [1, C, T, h, w] chunk by chunk into an mp4; returns the path."""
    if latents.dim() != 5 or latents.shape[0] != 1:
        raise ValueError(f"write_video writes one video: latents must be [1, C, T, h, w], got {tuple(latents.shape)}.")
    rate = as_fps(fps)
    out_rate = frame_transform.output_fps(rate) if frame_transform is not None else rate
    with VideoWriter(path, out_rate, crf=crf) as writer:
        def emit(frames: torch.Tensor) -> None:  # [t, H, W, 3] in 0..1
            if frames.shape[0]:
                writer.write(centre_crop(frames, crop))

        for chunk in vae.iter_decode(latents, tiling=tiling, progress=progress):  # [1, 3, n, H, W] in [-1, 1]
            frames = (chunk[0].permute(1, 2, 3, 0) + 1) / 2  # [n, H, W, 3]
            emit(frame_transform.push(frames) if frame_transform is not None else frames)
        if frame_transform is not None:
            emit(frame_transform.finish())
    return writer.path
