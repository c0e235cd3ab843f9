"""Wan-Animate's face video: per-frame crops around the driving face, stretched to 512 x 512.

The box is the bounding box of the 68 face points grown to 1.3x its area with its aspect kept;
the extra width is split evenly, the extra height goes 3/4 above (forehead, hair) and 1/4 below,
as Wan2.2's preprocessing does. Frames without a face reuse the nearest frame's box, so the crop
never jumps to the picture's corner.

Boxes are whole pixels and axis-aligned, so a crop is a slice plus a resize (resize.py). An affine
warp (kornia's warp_affine) gives the same bilinear samples when a box is enlarged, but has no
antialiasing for a large face box shrunk to 512.
"""
from __future__ import annotations

import math
from typing import Iterable, Iterator

import numpy as np
import torch

from .raster import Picture
from .resize import resize_pictures, to_uint8
from .types import PoseSequence

FACE_CROP_SIZE = 512
FACE_AREA_SCALE = 1.3
IBUG_POINTS = 68  # pupils are inside the eyes: they never widen the box


class NoFaceError(ValueError):
    """No frame of the pose has a face, so there is nothing to crop."""


def face_box(face: np.ndarray, width: int, height: int, scale: float = FACE_AREA_SCALE,
             threshold: float = 0.5) -> tuple[int, int, int, int] | None:
    """Crop box `(x0, y0, x1, y1)` (pixels, end-exclusive) for one frame's face `[70, 3]`, or None."""
    points = face[:IBUG_POINTS]
    points = points[points[:, 2] >= threshold, :2]
    if len(points) < 2:
        return None
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    box_w, box_h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    grow = math.sqrt(scale)  # area x scale with the aspect kept = each side x sqrt(scale)
    extra_w, extra_h = box_w * (grow - 1), box_h * (grow - 1)
    left, right = max(x0 - extra_w / 2, 0), min(x1 + extra_w / 2, width)
    top, bottom = max(y0 - extra_h * 3 / 4, 0), min(y1 + extra_h / 4, height)
    box = int(left), int(top), int(math.ceil(right)), int(math.ceil(bottom))
    return box if box[2] > box[0] and box[3] > box[1] else None


def face_boxes(pose: PoseSequence, **options) -> np.ndarray:
    """One box per frame `[N, 4]` int (x0, y0, x1, y1); frames without a face take the nearest face's box."""
    if pose.retargeted:
        raise ValueError("face crops are cut from the driving video, so they need the driving pose as extracted, "
                         "not the retargeted one (its face sits where the photo's face is)")
    boxes = [face_box(face, pose.width, pose.height, **options) for face in pose.face]
    found = [i for i, box in enumerate(boxes) if box is not None]
    if not found:
        raise NoFaceError(f"no face was found in any of the {pose.frame_count} frames of the pose "
                          f"({pose.source or 'unknown source'}); face crops need a visible face in the driving video")
    nearest = np.array(found)[np.abs(np.arange(len(boxes))[:, None] - np.array(found)[None]).argmin(axis=1)]
    return np.array([boxes[i] for i in nearest], np.int64)


def crop_face(frame: Picture, box, size: int = FACE_CROP_SIZE) -> Picture:
    """Crop `frame` `[H, W, 3]` to `box` and stretch it to `size` x `size` (bilinear, antialiased, aspect not kept).

    `frame`: uint8 numpy, or a torch tensor (uint8, or float in any range) on any device; the crop
    comes back as the same kind, dtype and device.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    pixels = frame if torch.is_tensor(frame) else torch.from_numpy(np.ascontiguousarray(frame))
    crop = resize_pictures(pixels[None, y0:y1, x0:x1], size, size)[0]  # [size, size, 3] float
    if pixels.dtype == torch.uint8:
        crop = to_uint8(crop)
    else:
        crop = crop.to(pixels.dtype)
    return crop if torch.is_tensor(frame) else crop.numpy()


def iter_face_crops(frames: Iterable[Picture], boxes: np.ndarray, size: int = FACE_CROP_SIZE) -> Iterator[Picture]:
    """Streams one `[size, size, 3]` crop per frame (see crop_face); `frames` and `boxes` must pair up one to one."""
    count = 0
    for count, frame in enumerate(frames, 1):
        if count > len(boxes):
            raise ValueError(f"more frames than face boxes ({len(boxes)}); crop the frames the pose was made from")
        yield crop_face(frame, boxes[count - 1], size)
    if count != len(boxes):
        raise ValueError(f"{count} frames for {len(boxes)} face boxes; crop the frames the pose was made from")
