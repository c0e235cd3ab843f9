"""Pose pictures in the conventions the video models were trained on.

- "openpose": the ControlNet / DWPose standard (VACE): 18 body points, ellipse limbs 4 px wide at
  60 % colour, joints radius 4, rainbow hand lines 2 px with blue joints, white face dots radius 3.
- "wan_animate": Wan2.2-Animate's pose video: 20 body points (toes added), limb width and joint
  radius scaled with the resolution, hands thinner, no face (expression travels as face crops).
"""
from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from .raster import Picture, canvas_for
from .types import PoseSequence

# Limbs as (from, to) body indices, in the order their colours are assigned.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
    (13, 18), (10, 19),  # ankle -> toe, Wan-Animate only
)
COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
    (200, 200, 0), (100, 100, 0),  # toes, Wan-Animate only
)
HAND_EDGES = tuple((0 if i % 4 == 0 else i, i + 1) for i in range(20))  # wrist->finger base, then along each finger
HAND_EDGE_COLORS = tuple(tuple(round(255 * c) for c in colorsys.hsv_to_rgb(i / 20, 1.0, 1.0)) for i in range(20))
HAND_JOINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)
LIMB_SHADE = 0.6  # limbs are drawn darker than their joints


@dataclass(frozen=True)
class Style:
    name: str
    body_points: int  # 18 (OpenPose) or 20 (with toes)
    threshold: float  # points below this confidence are not drawn
    draw_face: bool

    def sizes(self, width: int, height: int) -> dict:
        if self.name == "wan_animate":
            stick = max(int(min(width, height) / 200) - 1, 1)
            hand = max(stick // 2, 1)
            return {"stick": stick, "joint": stick, "hand_line": hand, "hand_joint": hand, "face": 0}
        return {"stick": 4, "joint": 4, "hand_line": 2, "hand_joint": 4, "face": 3}


STYLES = {
    "openpose": Style("openpose", body_points=18, threshold=0.3, draw_face=True),
    "wan_animate": Style("wan_animate", body_points=20, threshold=0.5, draw_face=False),
}


def style_named(name: str) -> Style:
    if name not in STYLES:
        raise ValueError(f"unknown pose style {name!r}; choose one of {', '.join(STYLES)}")
    return STYLES[name]


def _pixel(point) -> tuple[int, int]:
    return int(point[0]), int(point[1])  # OpenPose truncates, it does not round


def draw_pose(image: Picture, body: np.ndarray, hands: np.ndarray, face: np.ndarray, style: Style, *,
              body_on: bool = True, hands_on: bool = True, face_on: bool = True, backend: str = "auto") -> Picture:
    """Draws one frame's points (already in `image`'s pixels) into `image` `[H, W, 3]` uint8, in place.

    `image` is a numpy array or a torch tensor on any device; see raster.canvas_for for `backend`.
    """
    with canvas_for(image, backend) as canvas:
        height, width = image.shape[:2]
        size = style.sizes(width, height)
        threshold = style.threshold
        if body_on:
            for (a, b), color in zip(LIMBS, COLORS):
                if max(a, b) >= style.body_points or body[a, 2] < threshold or body[b, 2] < threshold:
                    continue
                (xa, ya), (xb, yb) = body[a, :2], body[b, :2]
                length = math.hypot(xa - xb, ya - yb)
                angle = math.degrees(math.atan2(ya - yb, xa - xb))
                center = (int((xa + xb) / 2), int((ya + yb) / 2))
                canvas.ellipse(center, (int(length / 2), size["stick"]), int(angle),
                               [int(c * LIMB_SHADE) for c in color])
            for point, color in zip(body[:style.body_points], COLORS):
                if point[2] >= threshold:
                    canvas.disc(_pixel(point), size["joint"], color)
        if hands_on:
            for hand in hands:  # [21, 3]
                for (a, b), color in zip(HAND_EDGES, HAND_EDGE_COLORS):
                    if hand[a, 2] >= threshold and hand[b, 2] >= threshold:
                        canvas.line(_pixel(hand[a]), _pixel(hand[b]), size["hand_line"], color)
                for point in hand:
                    if point[2] >= threshold:
                        canvas.disc(_pixel(point), size["hand_joint"], HAND_JOINT_COLOR)
        if face_on and style.draw_face:
            for point in face:
                if point[2] >= threshold:
                    canvas.disc(_pixel(point), size["face"], FACE_COLOR)
    return image


def scaled_to(pose: PoseSequence, width: int, height: int) -> PoseSequence:
    """The same pose on a `width` x `height` canvas (each axis stretched like the picture it belongs to)."""
    if (width, height) == (pose.width, pose.height):
        return pose
    factor = np.array([width / pose.width, height / pose.height, 1.0], np.float32)
    return pose.replace(body=pose.body * factor, hands=pose.hands * factor, face=pose.face * factor,
                        width=width, height=height)


def iter_render(pose: PoseSequence, style: str = "openpose", *, width: Optional[int] = None,
                height: Optional[int] = None, background: Optional[np.ndarray] = None, body: bool = True,
                hands: bool = True, face: bool = True, backend: str = "auto") -> Iterator[np.ndarray]:
    """One RGB uint8 picture `[H, W, 3]` per frame, at `width` x `height` (default: the pose canvas).

    `background`: a picture `[H, W, 3]` or one per frame `[N, H, W, 3]` (uint8, already at the output
    size) to draw over instead of black, e.g. to check that a skeleton fits its person.
    """
    chosen = style_named(style)
    pose = scaled_to(pose, width or pose.width, height or pose.height)
    if background is not None:
        background = np.asarray(background)
        expected = (pose.height, pose.width, 3)
        if background.dtype != np.uint8 or background.shape[-3:] != expected or background.ndim not in (3, 4):
            raise ValueError(f"background must be uint8 [H, W, 3] or [N, H, W, 3] with H, W = {expected[:2]}, "
                             f"got {background.dtype} {list(background.shape)}")
    for index in range(pose.frame_count):
        if background is None:
            image = np.zeros((pose.height, pose.width, 3), np.uint8)
        else:
            image = np.array(background if background.ndim == 3 else background[min(index, len(background) - 1)])
        yield draw_pose(image, pose.body[index], pose.hands[index], pose.face[index], chosen,
                        body_on=body, hands_on=hands, face_on=face, backend=backend)


def render(pose: PoseSequence, style: str = "openpose", **options) -> np.ndarray:
    """All frames at once, `[N, H, W, 3]` uint8 (for previews and short clips; see `iter_render`)."""
    return np.stack(list(iter_render(pose, style, **options)))
