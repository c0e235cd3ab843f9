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


def read_frames(path: Union[str, os.PathLike], *, step: int = 1, max_frames: int = 0) -> VideoData:
    """Every `step`-th frame of the first video stream, at most `max_frames` of them (0 = all), RGB uint8.

    Decoding stops once enough frames are kept, so a long driving video costs only what is used;
    the frame rate is the stream's divided by `step`.
    """
    import av

    if step < 1 or max_frames < 0:
        raise ValueError(f"read_frames: step must be >= 1 and max_frames >= 0, got {step} and {max_frames}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file {path} does not exist")
    kept = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 1
        for index, frame in enumerate(container.decode(stream)):
            if index % step == 0:
                kept.append(frame.to_ndarray(format="rgb24"))  # [H, W, 3]
                if len(kept) == max_frames:
                    break
    if not kept:
        raise ValueError(f"{path}: the video stream has no frames")
    return VideoData(torch.from_numpy(np.stack(kept)), Fraction(rate) / step)
