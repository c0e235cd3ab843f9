"""Streaming frame-rate conversion at any rational ratio (16 -> 30, 24 -> 30, 30 -> 24 ...).

Output frame k is shown at k / fps_out seconds, which is input position s_k = k * fps_in / fps_out
(in input frames, exact Fraction arithmetic, so nothing drifts over minutes). An output that lands on
an input frame is that frame; one between frames i and i + 1 is interpolated at t = s_k - i. The
last output is the last one at or before the last input frame, so N input frames give

    output_count(N) = floor((N - 1) * fps_out / fps_in) + 1     (e.g. 81 frames 16 -> 30 fps: 151)

and the clip keeps its duration (N - 1) / fps_in up to less than one output frame. Frames flow
through as chunks: at any time the converter holds the current input chunk, one earlier frame and
the in-betweens of the current chunk, never the clip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, Iterator, Optional

import torch

from ..video.writer import as_fps
from .methods import DEFAULT_METHOD, InBetween, Interpolator, get_interpolator

FrameTransform = Callable[[Iterable[torch.Tensor]], Iterator[torch.Tensor]]  # chunks [t, H, W, 3] -> chunks


@dataclass(frozen=True)
class FrameRates:
    fps_in: Fraction
    fps_out: Fraction

    @classmethod
    def of(cls, fps_in, fps_out) -> "FrameRates":
        return cls(as_fps(fps_in), as_fps(fps_out))

    def output_count(self, input_frames: int) -> int:
        if input_frames <= 0:
            return 0
        return math.floor((input_frames - 1) * self.fps_out / self.fps_in) + 1

    def source_position(self, k: int) -> Fraction:
        """Where output frame k sits on the input timeline, in input frames (exact)."""
        return k * self.fps_in / self.fps_out


def retime(chunks: Iterable[torch.Tensor], fps_in, fps_out, interpolator: Optional[Interpolator] = None
           ) -> Iterator[torch.Tensor]:
    """Frames float [t, H, W, 3] in 0..1 at fps_in, in chunks -> chunks [m, H, W, 3] at fps_out (m >= 1)."""
    rates = FrameRates.of(fps_in, fps_out)
    interpolator = interpolator or get_interpolator(DEFAULT_METHOD)
    k, index = 0, -1  # next output frame; index of the latest input frame
    previous: Optional[torch.Tensor] = None  # input frame index - 1, [H, W, 3]
    for chunk in chunks:
        _check_chunk(chunk, previous)
        out = []
        for frame in chunk:  # [H, W, 3]
            index += 1
            in_between: Optional[InBetween] = None  # made at most once per input pair, only if needed
            while rates.source_position(k) <= index:
                t = rates.source_position(k) - (index - 1)  # in (0, 1] for this pair (the very first: 1)
                if t == 1:
                    out.append(frame)
                else:
                    in_between = in_between or interpolator.pair(previous, frame)
                    out.append(in_between(float(t)))
                k += 1
            previous = frame
        if len(chunk):
            previous = previous.clone()  # a copy, so the chunk it came from can be freed
        if out:
            yield torch.stack(out)  # [m, H, W, 3]


def frame_rate_converter(fps_in, fps_out, method: str = DEFAULT_METHOD, **options) -> FrameTransform:
    """A reusable iterator transform for streaming pipelines (e.g. `decode_to_file(frame_transform=...)`)."""
    FrameRates.of(fps_in, fps_out)  # bad rates fail here, before any decoding starts
    interpolator = get_interpolator(method, **options)
    return lambda chunks: retime(chunks, fps_in, fps_out, interpolator)


def _check_chunk(chunk: torch.Tensor, previous: Optional[torch.Tensor]) -> None:
    if not torch.is_tensor(chunk) or chunk.dim() != 4 or chunk.shape[-1] != 3 or not chunk.is_floating_point():
        got = f"{tuple(chunk.shape)} {chunk.dtype}" if torch.is_tensor(chunk) else type(chunk).__name__
        raise ValueError(f"frame-rate conversion takes float frames [t, H, W, 3] in 0..1; got {got}")
    if previous is not None and chunk.shape[1:] != previous.shape:
        raise ValueError(f"frame size changed from {tuple(previous.shape)} to {tuple(chunk.shape[1:])} "
                         "inside one video")
