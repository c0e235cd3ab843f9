"""Test footage of the kinds users bring, made from one clip by known camera moves.

Every case is a per-frame similarity transform (zoom, pan, mirror) from the source clip into a
new canvas, optionally with a second, smaller person composited in. The same transform applies to
pixels (to run a real detector on the result) and to keypoints (to get the truth, or to build
cases from synthetic skeletons), so one table describes both.

Coordinates of the transforms are fractions of the source frame, so the cases suit any clip whose
main person stands roughly where `focus` says.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from .types import PoseSequence


@dataclass(frozen=True)
class Camera:
    """Where the virtual camera looks at time `t` in 0..1: the source point (fractions of the source
    frame) shown at the canvas centre, the zoom (1 = the whole source width fills the canvas width) and
    whether the picture is mirrored left-right."""

    centre: Callable[[float], tuple[float, float]]
    zoom: Callable[[float], float]
    mirror: bool = False


@dataclass(frozen=True)
class FootageCase:
    name: str
    description: str
    camera: Camera
    # A second person: the same clip played backwards, this camera, pasted over the first picture.
    second: Optional[Camera] = None


def _still(x: float, y: float) -> Callable[[float], tuple[float, float]]:
    return lambda t: (x, y)


def _placed(source_point: tuple[float, float], canvas_point: tuple[float, float], zoom: float,
            mirror: bool = False) -> Camera:
    """A still camera showing `source_point` at `canvas_point` (fractions; source and canvas share an aspect)."""
    (px, py), (qx, qy) = source_point, canvas_point
    sign = -1.0 if mirror else 1.0
    return Camera(_still(px - sign * (qx - 0.5) / zoom, py - (qy - 0.5) / zoom), lambda t: zoom, mirror)


def _ramp(start: float, end: float) -> Callable[[float], float]:
    """Geometric interpolation: a push-in at a steady visual speed."""
    return lambda t: start * (end / start) ** t


BODY_FOCUS = (0.62, 0.55)

CASES = (
    FootageCase("original", "the clip as it is", Camera(_still(0.5, 0.5), lambda t: 1.0)),
    FootageCase("push_in_closeup", "upper-body close-up, slow push-in, hands mostly out of frame (held-out case)",
                Camera(lambda t: (0.64, 0.36 - 0.06 * t), _ramp(1.8, 3.2))),
    FootageCase("crop_upper_body", "static crop to head and shoulders",
                Camera(_still(0.63, 0.40), lambda t: 2.0)),
    FootageCase("far_to_close", "starts small and far, pushes in to a close-up",
                Camera(lambda t: (0.62, 0.6 - 0.25 * t), _ramp(0.35, 2.4))),
    FootageCase("pan_limbs_leave", "sideways pan: arms, then the head leave the frame and come back",
                Camera(lambda t: (0.64 + 0.38 * np.sin(2 * np.pi * t), 0.5), lambda t: 1.4)),
    FootageCase("mirrored", "mirrored left-right", Camera(_still(0.5, 0.5), lambda t: 1.0, mirror=True)),
    FootageCase("second_person", "a second, smaller person composited on the left",
                Camera(_still(0.5, 0.5), lambda t: 1.0),
                second=_placed(BODY_FOCUS, (0.15, 0.62), 0.35, mirror=True)),
    FootageCase("leaves_and_returns", "the camera turns away (person fully out of frame) and back",
                Camera(lambda t: (0.62 + 1.6 * max(0.0, np.sin(np.pi * (t - 0.3) / 0.4)) * (0.3 < t < 0.7), 0.5),
                       lambda t: 1.2)),
    FootageCase("small_far_away", "a small person far away (the clip shrunk to 30 % in a corner)",
                _placed(BODY_FOCUS, (0.75, 0.68), 0.3)),
)
CASE_NAMES = tuple(case.name for case in CASES)


def case_named(name: str) -> FootageCase:
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(f"unknown footage case {name!r}; choose one of {', '.join(CASE_NAMES)}")


def matrix(camera: Camera, t: float, source: tuple[int, int], canvas: tuple[int, int]) -> np.ndarray:
    """2x3 affine `[2, 3]` mapping source pixels to canvas pixels at time `t`."""
    (sw, sh), (cw, ch) = source, canvas
    k = camera.zoom(t) * cw / sw  # canvas pixels per source pixel
    cx, cy = camera.centre(t)
    sx = -k if camera.mirror else k
    return np.array([[sx, 0.0, cw / 2 - sx * cx * sw], [0.0, k, ch / 2 - k * cy * sh]])


def _times(frames: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)


def transform_points(points: np.ndarray, affine: np.ndarray, canvas: tuple[int, int],
                     mirror: bool) -> np.ndarray:
    """Points `[..., K, 3]` through `affine`; those landing outside the canvas become missing (0, 0, 0).

    Mirroring swaps which side of the picture a person's left is on but not the person's own left
    and right, so labels stay as they are.
    """
    out = points.astype(np.float32).copy()
    xy = points[..., :2] @ affine[:, :2].T + affine[:, 2]  # [..., K, 2]
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= canvas[0]) & (xy[..., 1] >= 0) & (xy[..., 1] <= canvas[1])
    keep = inside & (points[..., 2] > 0)
    out[..., :2] = np.where(keep[..., None], xy, 0.0)
    out[..., 2] = np.where(keep, points[..., 2], 0.0)
    return out


def transform_pose(pose: PoseSequence, camera: Camera, canvas: tuple[int, int],
                   reverse: bool = False) -> PoseSequence:
    """The pose as the virtual camera sees it (points leaving the canvas are missing)."""
    source = (pose.width, pose.height)
    order = np.arange(pose.frame_count)[::-1] if reverse else np.arange(pose.frame_count)
    parts = {"body": [], "hands": [], "face": []}
    for frame, t in zip(order, _times(pose.frame_count)):
        affine = matrix(camera, t, source, canvas)
        for name in parts:
            parts[name].append(transform_points(getattr(pose, name)[frame], affine, canvas, camera.mirror))
    return pose.replace(**{name: np.stack(value) for name, value in parts.items()}, width=canvas[0],
                        height=canvas[1], video_path=None, source=f"{pose.source} via footage transform")


def case_people(pose: PoseSequence, case: FootageCase, canvas: tuple[int, int]) -> list[PoseSequence]:
    """The case's people as keypoints: the main person first, then the composited one if any."""
    people = [transform_pose(pose, case.camera, canvas)]
    if case.second is not None:
        people.append(transform_pose(pose, case.second, canvas, reverse=True))
    return people


def case_frames(frames: Iterable[np.ndarray], frame_count: int, case: FootageCase,
                canvas: tuple[int, int]) -> Iterator[np.ndarray]:
    """The case's pictures (RGB uint8 `[H, W, 3]`) from the source pictures; the frames are all kept in
    memory only when a second (time-reversed) person is composited in. Needs OpenCV."""
    import cv2

    frames = list(frames) if case.second is not None else frames
    for index, (frame, t) in enumerate(zip(frames, _times(frame_count))):
        source = (frame.shape[1], frame.shape[0])
        out = cv2.warpAffine(frame, matrix(case.camera, t, source, canvas), canvas, flags=cv2.INTER_AREA,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        if case.second is not None:
            other = frames[frame_count - 1 - index]
            affine = matrix(case.second, t, source, canvas)
            pasted = cv2.warpAffine(other, affine, canvas, flags=cv2.INTER_AREA)
            mask = cv2.warpAffine(np.full(other.shape[:2], 255, np.uint8), affine, canvas, flags=cv2.INTER_NEAREST)
            out = np.where(mask[..., None] > 0, pasted, out)
        yield out
