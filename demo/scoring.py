"""Read a demo video's content back from its pixels: background colour, object colour, motion.

Works on any single-object clip (generated or ground truth): every pixel is named by its nearest
palette colour, the most common name is the background, the pixels far from the background
colour are the object, and the object's centroid track gives the direction of motion.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .dataset import COLOURS, PALETTE

_PALETTE_RGB = np.array([PALETTE[c] for c in COLOURS], dtype=np.float32)  # [K, 3]

OBJECT_DISTANCE = 80.0  # RGB distance from the background above which a pixel belongs to the object
CORE_FRACTION = 0.7  # of the largest distance from the background, for the colour-reading core
MIN_OBJECT_PIXELS = 6  # per frame; fewer and the frame has no visible object
MIN_TRAVEL = 6.0  # pixels the centroid must move to count as a direction


@dataclass(frozen=True)
class VideoReading:
    background: str
    object_colour: Optional[str]  # None when no object is visible
    direction: str  # "left" / "right" / "up" / "down", or "still" / "none" (no object)
    centroids: np.ndarray  # [T, 2] (x, y) per frame; NaN where the object is not visible
    travel: tuple[float, float]  # centroid displacement (dx, dy) from the first to the last frames


def nearest_colour(rgb: np.ndarray) -> np.ndarray:
    """Palette index of each colour `[..., 3]` -> `[...]`."""
    d = ((rgb[..., None, :].astype(np.float32) - _PALETTE_RGB) ** 2).sum(-1)  # [..., K]
    return d.argmin(-1)


def read_video(video: np.ndarray) -> VideoReading:
    """Score a uint8 video `[T, H, W, 3]`."""
    pixels = video.astype(np.float32)  # [T, H, W, 3]
    labels = nearest_colour(pixels)  # [T, H, W]
    counts = np.bincount(labels.ravel(), minlength=len(COLOURS))
    background_index = int(counts.argmax())
    background_rgb = np.median(pixels[labels == background_index], axis=0)  # [3]

    distance = np.linalg.norm(pixels - background_rgb, axis=-1)  # [T, H, W]
    object_mask = distance > OBJECT_DISTANCE
    # The colour is read from the object's core (the pixels least like the background): blurred
    # edges blend object and background into a third palette colour (orange on white -> yellow).
    core = object_mask & (distance >= CORE_FRACTION * np.percentile(distance, 99.5))
    object_labels = labels[core]
    object_labels = object_labels[object_labels != background_index]
    object_colour = None
    if object_labels.size >= MIN_OBJECT_PIXELS:
        object_colour = COLOURS[int(np.bincount(object_labels, minlength=len(COLOURS)).argmax())]

    centroids = np.full((len(video), 2), np.nan, dtype=np.float32)
    ys, xs = np.mgrid[: video.shape[1], : video.shape[2]]
    for t, mask in enumerate(object_mask):
        if mask.sum() >= MIN_OBJECT_PIXELS:
            centroids[t] = xs[mask].mean(), ys[mask].mean()
    direction, travel = _direction(centroids)
    return VideoReading(COLOURS[background_index], object_colour, direction, centroids, travel)


def _direction(centroids: np.ndarray) -> tuple[str, tuple[float, float]]:
    visible = centroids[~np.isnan(centroids[:, 0])]  # [n, 2]
    if len(visible) < 4:
        return "none", (0.0, 0.0)
    # Average a few frames at each end so one noisy frame cannot flip the answer.
    k = max(1, len(visible) // 4)
    dx, dy = visible[-k:].mean(0) - visible[:k].mean(0)
    if max(abs(dx), abs(dy)) < MIN_TRAVEL:
        return "still", (float(dx), float(dy))
    if abs(dx) >= abs(dy):
        return ("right" if dx > 0 else "left"), (float(dx), float(dy))
    return ("down" if dy > 0 else "up"), (float(dx), float(dy))
