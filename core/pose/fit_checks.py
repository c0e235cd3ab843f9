"""The three figures that say whether a retargeted pose fits its photo (issue acceptance).

- face: of the driving frames with a face (at least 90 % of its 68 points in view: a face mostly
  outside the frame is not drawn, since points not seen are never invented), the share whose
  retargeted face is drawn (90 % of its points), wholly inside the photo, at 0.5-2x the photo's
  own face size;
- long bones: drawn bones (body and hands) longer than the photo person's height;
- outside: drawn points more than 10 % of the canvas outside it.

Measured on the poses alone, independently of how retargeting works, so any retargeter can be judged.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .render import HAND_EDGES, LIMBS
from .types import PoseSequence

DRAWN = 0.3  # the lowest confidence the renderers draw
FACE_DRAWN = 0.9  # share of the 68 face points that must be drawn for the face to count
FACE_SIZE_RANGE = (0.5, 2.0)
MARGIN = 0.1


@dataclass(frozen=True)
class FitFigures:
    face_frames: int  # driving frames with a face (90 % of its points in view)
    face_partial: int  # driving frames with only part of a face in view (not counted above)
    face_fitted: int  # of those, frames whose retargeted face is drawn inside the photo at 0.5-2x its size
    long_bones: int  # drawn bones longer than the photo person's height
    outside_points: int  # drawn points more than 10 % outside the canvas
    photo_height: float  # pixels: the photo person's visible height

    @property
    def face_share(self) -> float:
        return self.face_fitted / self.face_frames if self.face_frames else 1.0

    def line(self) -> str:
        return (f"face fitted {self.face_fitted}/{self.face_frames} ({100 * self.face_share:.1f}%; "
                f"{self.face_partial} more frames show part of a face), "
                f"bones longer than the photo person ({self.photo_height:.0f}px): {self.long_bones}, "
                f"points >10% outside the canvas: {self.outside_points}")


def _size(points: np.ndarray) -> float:
    w, h = points.max(axis=0) - points.min(axis=0)
    return float(np.sqrt(max(w, 1e-6) * max(h, 1e-6)))


def photo_height(reference: PoseSequence) -> float:
    """Vertical extent of everything found on the photo's person (body, face, hands)."""
    points = np.concatenate([reference.body[0], reference.face[0], reference.hands[0].reshape(-1, 3)])
    seen = points[points[:, 2] >= DRAWN, 1]
    if len(seen) < 2:
        raise ValueError("the reference pose shows no person to measure")
    return float(seen.max() - seen.min())


def measure_fit(driving: PoseSequence, moved: PoseSequence, reference: PoseSequence) -> FitFigures:
    """The three figures for `moved` (retargeted from `driving` onto `reference`'s photo)."""
    width, height = moved.width, moved.height
    ref_face = reference.face[0, :68]
    if (ref_face[:, 2] > 0).sum() < 2:
        raise ValueError("the reference photo has no face to compare sizes with")
    photo_face = _size(ref_face[ref_face[:, 2] > 0, :2])
    tall = photo_height(reference)
    visible = (driving.face[:, :68, 2] > 0).sum(axis=1)  # [N]
    found = visible >= FACE_DRAWN * 68
    partial = int(((visible > 0) & ~found).sum())
    fitted = 0
    for t in np.flatnonzero(found):
        face = moved.face[t, :68]
        drawn = face[face[:, 2] >= DRAWN, :2]
        if len(drawn) < FACE_DRAWN * 68:
            continue
        inside = (drawn[:, 0] >= 0).all() and (drawn[:, 0] <= width).all() and \
            (drawn[:, 1] >= 0).all() and (drawn[:, 1] <= height).all()
        ratio = _size(drawn) / photo_face
        fitted += bool(inside and FACE_SIZE_RANGE[0] <= ratio <= FACE_SIZE_RANGE[1])
    long_bones = 0
    for points, edges in ((moved.body, LIMBS), *((moved.hands[:, side], HAND_EDGES) for side in range(2))):
        for a, b in edges:
            drawn = (points[:, a, 2] >= DRAWN) & (points[:, b, 2] >= DRAWN)
            length = np.linalg.norm(points[:, a, :2] - points[:, b, :2], axis=-1)
            long_bones += int((drawn & (length > tall)).sum())
    outside = 0
    for points in (moved.body, moved.hands.reshape(moved.frame_count, -1, 3), moved.face):
        x, y, c = points[..., 0], points[..., 1], points[..., 2]
        far = (x < -MARGIN * width) | (x > (1 + MARGIN) * width) | (y < -MARGIN * height) | (y > (1 + MARGIN) * height)
        outside += int(((c >= DRAWN) & far).sum())
    return FitFigures(int(found.sum()), partial, fitted, long_bones, outside, tall)
