"""Streaming H.264 (yuv420p) writer: frames go to the encoder as they arrive, never all at once.

The file is written under a hidden temporary name in the same folder and renamed only when it
is complete, so a crash or a cancel never leaves a half-written video under the real name; an
existing file is never overwritten. yuv420p stores colour at half resolution, so it needs even
sizes: an odd width or height is padded by repeating the last column/row (the file is then one
pixel wider/taller; nothing of the picture is lost).
"""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Union

import torch

from .x264_cpu import x264_params

CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


def as_fps(fps: Union[int, float, Fraction, str]) -> Fraction:
    """An exact frame rate: 30 -> 30/1, 29.97 -> 30000/1001, "24000/1001" -> 24000/1001."""
    rate = Fraction(fps) if not isinstance(fps, float) else None
    if rate is None:
        # Floats such as 23.976 / 29.97 / 59.94 mean the NTSC rates n*1000/1001.
        ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
        rate = ntsc if abs(float(ntsc) - fps) < 5e-3 and fps != round(fps) else Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


class VideoWriter:
    """`with VideoWriter(path, fps) as w: w.write(frames)`; frames uint8 [t, H, W, 3] or float in 0..1."""

    def __init__(self, path: Union[str, os.PathLike], fps=16, *, crf: int = 18, preset: str = "medium"):
        self.path = Path(path)
        self.fps = as_fps(fps)
        self.crf, self.preset = crf, preset
        container = CONTAINERS.get(self.path.suffix.lower())
        if container is None:
            raise ValueError(f"{self.path}: unsupported video file type {self.path.suffix!r}; use one of "
                             f"{', '.join(CONTAINERS)}")
        self._format = container
        self._check_target()
        self._tmp = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}-{id(self):x}{self.path.suffix}")
        self._container = self._stream = None
        self.frames_written = 0
        self.width: Optional[int] = None  # as stored in the file (even)
        self.height: Optional[int] = None

    def _check_target(self) -> None:
        if self.path.exists():
            raise FileExistsError(f"{self.path} already exists; Kinema never overwrites a file. "
                                  f"Choose another name or delete the old file")
        if not self.path.parent.is_dir():
            raise FileNotFoundError(f"{self.path.parent} does not exist; create the folder first")

    def __enter__(self) -> "VideoWriter":
        import av

        self._container = av.open(str(self._tmp), mode="w", format=self._format,
                                  options={"movflags": "+faststart"} if self._format in ("mp4", "mov") else {})
        return self

    def write(self, frames: torch.Tensor) -> None:
        """Append frames [t, H, W, 3] (uint8, or float in 0..1)."""
        if self._container is None:
            raise RuntimeError("VideoWriter.write outside its `with` block")
        frames = _to_uint8(frames)
        if self._stream is None:
            self._open_stream(frames.shape[1], frames.shape[2])
        elif frames.shape[1:3] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {tuple(frames.shape[1:3])} inside one video")
        import av

        for frame in _pad_even(frames).numpy():
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = self.frames_written
            self._container.mux(self._stream.encode(picture))
            self.frames_written += 1

    def _open_stream(self, height: int, width: int) -> None:
        self._size = (height, width)
        self.height, self.width = height + height % 2, width + width % 2
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.codec_context.time_base = 1 / self.fps  # one tick per frame: pts = frame index
        # x264_params: libx264 on AVX-512 CPUs does not encode the same frames the same way twice.
        stream.options = {"crf": str(self.crf), "preset": self.preset, **x264_params()}
        self._stream = stream

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                if self._stream is None:
                    raise ValueError(f"{self.path}: no frames were written; an empty video is not saved")
                self._container.mux(self._stream.encode(None))  # flush delayed frames
            self._container.close()
            if exc_type is None:
                _publish(self._tmp, self.path)
        finally:
            self._container = None
            if self._tmp.exists():
                self._tmp.unlink()


def _to_uint8(frames: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(frames) or frames.dim() != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if torch.is_tensor(frames) else type(frames).__name__
        raise ValueError(f"VideoWriter.write takes frames [t, H, W, 3]; got {shape}")
    if frames.dtype == torch.uint8:
        return frames.cpu().contiguous()
    if not frames.is_floating_point():
        raise ValueError(f"VideoWriter.write takes uint8 or float frames in 0..1; got {frames.dtype}")
    return (frames.float().clamp(0, 1) * 255).round_().to(torch.uint8).cpu().contiguous()


def _pad_even(frames: torch.Tensor) -> torch.Tensor:
    _, h, w, _ = frames.shape
    if h % 2:
        frames = torch.cat([frames, frames[:, -1:]], dim=1)
    if w % 2:
        frames = torch.cat([frames, frames[:, :, -1:]], dim=2)
    return frames


def _publish(tmp: Path, final: Path) -> None:
    """Give the finished file its real name without ever replacing an existing file."""
    try:
        os.link(tmp, final)  # fails if `final` exists, atomically
    except FileExistsError:
        raise FileExistsError(f"{final} appeared while the video was being written; the new video was discarded "
                              f"rather than overwrite it. Choose another name") from None
    except OSError:  # file systems without hard links
        if final.exists():
            raise FileExistsError(f"{final} already exists; Kinema never overwrites a file") from None
        os.replace(tmp, final)
