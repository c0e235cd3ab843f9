"""Cleaning a detected pose over time: implausible limbs dropped, gap filling, then One Euro smoothing.

Order matters: short gaps are filled first so the filter never restarts inside them; long gaps
stay missing (a model given an invented limb draws it), and the filter restarts after them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .types import PoseSequence

DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class CleanSettings:
    min_confidence: float = 0.3  # points below it count as missing
    max_gap: int = 5  # missing runs this short are interpolated inside the clip, or carried at its ends
    # Joints at the end of a bone seen far longer than its usual length (at the camera's zoom) are
    # detection errors, e.g. arms drawn across the picture around a small or half-hidden person.
    drop_implausible: bool = True
    smooth: bool = True
    # One Euro filter on coordinates measured in canvas heights (so the settings do not depend on the
    # resolution). At rest the cut-off is min_cutoff Hz; it rises by beta Hz per canvas height per second.
    min_cutoff: float = 1.0
    beta: float = 10.0
    d_cutoff: float = 1.0

    def __post_init__(self):
        if self.max_gap < 0 or self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(f"invalid clean settings {self}: max_gap, beta >= 0 and cut-offs > 0 are required")


def _missing_runs(seen: np.ndarray) -> list[tuple[int, int]]:
    """Half-open runs [start, end) where `seen` `[N]` is False."""
    edges = np.diff(np.concatenate([[1], seen.astype(np.int8), [1]]))
    return list(zip(np.flatnonzero(edges == -1), np.flatnonzero(edges == 1)))


def fill_gaps(points: np.ndarray, min_confidence: float, max_gap: int) -> np.ndarray:
    """Points `[N, ..., 3]` with short gaps filled; everything still missing becomes exactly 0, 0, 0.

    A gap of at most `max_gap` frames between two seen frames is interpolated linearly (confidence =
    the lower of its two ends); one at the start or end of the clip holds the nearest seen point.
    """
    frames = points.shape[0]
    flat = points.reshape(frames, -1, 3).astype(np.float32)  # [N, P, 3]
    out = flat.copy()
    seen_all = flat[..., 2] >= min_confidence  # [N, P]
    out[~seen_all] = 0.0
    for p in range(flat.shape[1]):
        seen = seen_all[:, p]
        if seen.all() or not seen.any():
            continue
        for start, end in _missing_runs(seen):
            if end - start > max_gap:
                continue
            before, after = start - 1, end
            if before >= 0 and after < frames:
                t = (np.arange(start, end) - before)[:, None] / (after - before)  # [gap, 1]
                out[start:end, p, :2] = (1 - t) * flat[before, p, :2] + t * flat[after, p, :2]
                out[start:end, p, 2] = min(flat[before, p, 2], flat[after, p, 2])
            else:
                out[start:end, p] = flat[after if before < 0 else before, p]
    return out.reshape(points.shape)


def _alpha(cutoff, period: float):
    r = 2 * math.pi * cutoff * period
    return r / (r + 1)


def one_euro(points: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float,
             unit: float = 1.0) -> np.ndarray:
    """One Euro filter (Casiez et al., CHI 2012) along frames of points `[N, ..., 3]`.

    Coordinates are filtered in multiples of `unit` pixels. Points with confidence 0 are left
    missing, and the filter restarts on a point that reappears after one.
    """
    frames = points.shape[0]
    flat = points.reshape(frames, -1, 3).astype(np.float64)
    out = flat.copy()
    period = 1.0 / fps
    a_d = _alpha(d_cutoff, period)
    value = np.zeros(flat.shape[1:2] + (2,))  # [P, 2] filtered position
    speed = np.zeros_like(value)  # [P, 2] filtered derivative
    running = np.zeros(flat.shape[1], bool)  # [P] whether the filter has a previous sample
    for n in range(frames):
        seen = flat[n, :, 2] > 0  # [P]
        x = flat[n, :, :2] / unit  # [P, 2]
        raw_speed = np.where(running[:, None], (x - value) / period, 0.0)
        speed = np.where(running[:, None], a_d * raw_speed + (1 - a_d) * speed, 0.0)
        a = _alpha(min_cutoff + beta * np.abs(speed), period)
        value = np.where(running[:, None], a * x + (1 - a) * value, x)
        running = seen
        out[n, :, :2] = np.where(seen[:, None], value * unit, 0.0)
    return out.astype(np.float32).reshape(points.shape)


def clean(pose: PoseSequence, settings: CleanSettings = CleanSettings()) -> PoseSequence:
    """Implausible limbs dropped, gap filling, then (optionally) One Euro smoothing of body, hands and face."""
    if settings.drop_implausible and pose.frame_count > 1:
        from .retarget import drop_implausible

        pose, _ = drop_implausible(pose, settings.min_confidence)
    parts = {}
    for name in ("body", "hands", "face"):
        points = fill_gaps(getattr(pose, name), settings.min_confidence, settings.max_gap)
        if settings.smooth and pose.frame_count > 1:
            points = one_euro(points, pose.fps or DEFAULT_FPS, settings.min_cutoff, settings.beta,
                              settings.d_cutoff, unit=float(pose.height))
        parts[name] = points
    return pose.replace(**parts)
