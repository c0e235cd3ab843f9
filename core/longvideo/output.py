"""The streaming output chain: latents -> decode -> (frame transform, e.g. 16 -> 30 fps) -> crop -> mp4.

Frame transforms follow `WanVAE.decode_to_file`'s contract: a function from an iterator of frame
chunks float [t, H, W, 3] in 0..1 to another such iterator (core.interp.frame_rate_converter is
one). Only one decoded chunk, plus what a transform holds back, is in memory at a time, so a
2-minute 1080p video costs the memory of a few frames.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import torch

from ..progress import SILENT, Progress

FrameTransform = Callable[[Iterator[torch.Tensor]], Iterator[torch.Tensor]]


def centre_crop(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[t, H, W, 3] -> [t, height, width, 3] from the middle (e.g. 1088 -> 1080 rows)."""
    height, width = size
    h, w = frames.shape[1:3]
    if height > h or width > w:
        raise ValueError(f"cannot crop {w}x{h} frames to {width}x{height}; the crop must be no larger than the video.")
    top, left = (h - height) // 2, (w - width) // 2
    return frames[:, top:top + height, left:left + width]


def cropping(size: tuple[int, int]) -> FrameTransform:
    """A frame transform that centre-crops every chunk to (height, width)."""
    return lambda chunks: (centre_crop(chunk, size) for chunk in chunks)


def chained(*transforms: Optional[FrameTransform]) -> Optional[FrameTransform]:
    """The transforms applied in order (None entries skipped); None when there are none."""
    steps = [t for t in transforms if t is not None]
    if not steps:
        return None

    def run(chunks: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        for step in steps:
            chunks = step(chunks)
        return chunks

    return run


def write_video(vae, latents: torch.Tensor, path: Union[str, os.PathLike], fps=16, *,
                frame_transform: Optional[FrameTransform] = None, crop: Optional[tuple[int, int]] = None,
                tiling="auto", crf: int = 18, progress: Progress = SILENT) -> Path:
    """Decode one latent video [1, C, T, h, w] chunk by chunk through `frame_transform` (whose output rate
    is `fps`) and the crop into an mp4; returns the path."""
    transform = chained(frame_transform, cropping(crop) if crop is not None else None)
    return vae.decode_to_file(latents, path, fps=fps, crf=crf, frame_transform=transform, tiling=tiling,
                              progress=progress)
