"""Reading a whole (short) video back, for tests and tools."""
from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

import numpy as np
import torch


@dataclass(frozen=True)
class VideoData:
    frames: torch.Tensor  # uint8 [N, H, W, 3]
    fps: Fraction

    @property
    def frame_count(self) -> int:
        return self.frames.shape[0]


def read_video(path: Union[str, os.PathLike]) -> VideoData:
    """All frames of the first video stream as RGB uint8, with the stream's exact frame rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        fps = Fraction(stream.average_rate) if stream.average_rate else Fraction(stream.guessed_rate)
    if not frames:
        raise ValueError(f"{path}: the video stream has no frames")
    return VideoData(torch.from_numpy(np.stack(frames)), fps)
