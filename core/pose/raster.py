"""The four drawing primitives pose rendering needs, on an RGB uint8 picture `[H, W, 3]`.

OpenCV draws them exactly as OpenPose / DWPose / Wan-Animate do (no anti-aliasing), so it is used
for numpy pictures when installed. Otherwise, and for torch pictures on any device (CPU or CUDA),
kornia fills each shape as a convex polygon: a pixel is painted when its centre lies inside the
polygon or on its border. The outlines are chosen so the result matches OpenCV's pixels:

- limb ellipse: the whole-pixel outline of cv2.ellipse2Poly, filled. Limbs up to ~80 px long come
  out identical to OpenCV's; on longer ones OpenCV also paints some border pixels where an edge
  crosses a row exactly between two pixel centres (a few % of the limb, each touching it).
- disc of radius r: every pixel centre within r of the centre, which is what cv2.circle fills.
- line of thickness t >= 2: every pixel centre within `stroke_radius(t)` of the segment. kornia's
  own draw_line is one pixel wide whatever the thickness, while OpenCV's thick lines are about
  t + 1 pixels wide (its polygon fill rounds each row's ends outwards), so the band is used instead.
- line of thickness 1: OpenCV's one-pixel line, as a thin parallelogram (`hairline_polygon`).
  kornia's draw_line draws the same kind of line but breaks exact ties the other way and refuses
  end points off the picture, which retargeted poses have.
"""
from __future__ import annotations

import functools
import math
from typing import Union

import numpy as np
import torch

Picture = Union[np.ndarray, torch.Tensor]
BACKENDS = ("auto", "opencv", "kornia")
ARC_SAG = 0.05  # px: how far a round outline's chords may cut inside the ideal circle
HAIRLINE_NUDGE = 1e-3  # px: settles a one-pixel line's exact ties on the side OpenCV picks


def opencv():
    """The cv2 module, or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _kornia_fill():
    try:  # kornia >= 0.9 moved the drawing functions to kornia.image
        from kornia.image import draw_convex_polygon
    except ImportError:
        from kornia.utils import draw_convex_polygon
    return draw_convex_polygon


def _table_sin(degrees) -> np.ndarray:
    """sin of whole degrees as OpenCV's drawing code tabulates it (7 decimals, single precision), so the
    rounded outline lands on the same pixels as cv2.ellipse2Poly's."""
    return np.round(np.sin(np.radians(degrees)), 7).astype(np.float32).astype(np.float64)


def ellipse_polygon(center: tuple[int, int], half_axes: tuple[int, int], angle_deg: int) -> np.ndarray:
    """Vertices `[K, 2]` int32 of an ellipse outline sampled every degree, like cv2.ellipse2Poly(delta=1)."""
    angle = angle_deg % 360
    sin_angle, cos_angle = _table_sin(angle), _table_sin(angle + 90)
    degrees = np.arange(0, 361)
    x = half_axes[0] * _table_sin(degrees + 90)
    y = half_axes[1] * _table_sin(degrees)
    points = np.stack([center[0] + x * cos_angle - y * sin_angle,
                       center[1] + x * sin_angle + y * cos_angle], axis=-1)
    points = np.round(points).astype(np.int32)
    keep = np.ones(len(points), bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=-1)  # drop repeated vertices like OpenCV
    return points[keep]


def disc_polygon(center: tuple[int, int], radius: int) -> np.ndarray:
    """Vertices `[K, 2]` of a polygon holding exactly the pixel centres within `radius` of a pixel centre.

    Such centres lie at squared distances r^2 or less, the next ones at r^2 + 1 or more; the polygon
    passes between the two rings (its corners at sqrt(r^2 + 0.5), its edges never nearer than r).
    """
    return _disc_outline(radius) + center


@functools.lru_cache(maxsize=64)
def _disc_outline(radius: int) -> np.ndarray:
    corner = math.sqrt(radius * radius + 0.5)
    sides = max(8, math.ceil(math.pi / math.acos((radius + 1e-3) / corner)))
    t = np.arange(sides) * (2 * math.pi / sides)
    outline = np.stack([corner * np.cos(t), corner * np.sin(t)], axis=-1)  # [K, 2] around (0, 0)
    outline.setflags(write=False)
    return outline


def stroke_radius(thickness: int) -> float:
    """Distance from the segment within which a line of `thickness` >= 2 covers pixel centres, as OpenCV draws it.

    OpenCV fills a polygon of half-width t/2 (t/2 + 1/4 for odd t) and rounds each row's ends to the
    nearest pixel, which adds about half a pixel on each side.
    """
    return thickness / 2 + 0.5 + (0.25 if thickness % 2 else 0.0)


def stroke_polygon(start: tuple[int, int], end: tuple[int, int], radius: float) -> np.ndarray:
    """Vertices `[K, 2]` of the band within `radius` of the segment start-end (a capsule; a disc when they meet)."""
    (x0, y0), (x1, y1) = start, end
    direction = math.atan2(y1 - y0, x1 - x0)
    steps = max(2, math.ceil(math.pi / (2 * math.acos(1 - min(ARC_SAG / radius, 1.0)))))  # per half circle
    around_end = direction + np.linspace(-math.pi / 2, math.pi / 2, steps + 1)
    around_start = around_end + math.pi
    return np.concatenate([np.stack([x1 + radius * np.cos(around_end), y1 + radius * np.sin(around_end)], -1),
                           np.stack([x0 + radius * np.cos(around_start), y0 + radius * np.sin(around_start)], -1)])


def hairline_polygon(start: tuple[int, int], end: tuple[int, int]) -> np.ndarray:
    """Vertices `[4, 2]` of a one-pixel line between pixel centres, as OpenCV's (8-connected) thickness-1 line.

    Along the longer axis every pixel from start to end is drawn; across it, the one whose centre is
    nearest the segment. That is a parallelogram one pixel across, nudged so that a centre exactly
    half a pixel off is kept on the side OpenCV keeps: that of the end point with the smaller x.
    """
    (x0, y0), (x1, y1) = start, end
    if abs(x1 - x0) >= abs(y1 - y0):  # one pixel per column; ties towards the left end's row
        nudge = HAIRLINE_NUDGE * np.sign((x1 - x0) * (y1 - y0))
        low, high = -0.5 - nudge, 0.5 - nudge
        return np.array([(x0, y0 + low), (x1, y1 + low), (x1, y1 + high), (x0, y0 + high)], np.float64)
    low, high = -0.5 - HAIRLINE_NUDGE, 0.5 - HAIRLINE_NUDGE  # one pixel per row; ties towards smaller x
    return np.array([(x0 + low, y0), (x1 + low, y1), (x1 + high, y1), (x0 + high, y0)], np.float64)


class KorniaCanvas:
    """Fills convex polygons with kornia into a uint8 torch picture `[H, W, 3]` on its own device, in place.

    Shapes are queued and filled when the canvas is closed (`with canvas_for(...) as canvas:`): kornia
    fills one polygon per picture of a batch, so the queued shapes' masks are computed a batch at a
    time (one call costs about as much as a small one), then painted in the order they were drawn.
    """

    def __init__(self, image: torch.Tensor):
        self.image = image
        self._planes = image.permute(2, 0, 1)  # [3, H, W] view of the same memory
        self._queue: list = []  # (polygon [K, 2] float64, colour)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        if kind is None:
            self.paint()
        self._queue.clear()

    def fill_convex(self, polygon: np.ndarray, color) -> None:
        self._queue.append((np.asarray(polygon, np.float64).reshape(-1, 2), tuple(int(c) for c in color)))

    def ellipse(self, center: tuple[int, int], half_axes: tuple[int, int], angle_deg: int, color) -> None:
        self.fill_convex(ellipse_polygon(center, half_axes, angle_deg), color)

    def disc(self, center: tuple[int, int], radius: int, color) -> None:
        self.fill_convex(disc_polygon(center, radius), color)

    def line(self, start: tuple[int, int], end: tuple[int, int], thickness: int, color) -> None:
        if thickness <= 1:
            self.fill_convex(hairline_polygon(start, end), color)
        else:
            self.fill_convex(stroke_polygon(start, end, stroke_radius(thickness)), color)

    def paint(self) -> None:
        """Fills every queued shape into the picture."""
        _, height, width = self._planes.shape
        shapes = []  # (order, polygon, mask window (ya, yb, xa, xb) end-exclusive, colour)
        for order, (polygon, color) in enumerate(self._queue):
            # The mask window keeps a shape's whole width even where it leaves the picture: kornia before
            # 0.9 clamps edge slopes to the window's width, which bends edges cut off at its side.
            xa, xb = max(math.floor(polygon[:, 0].min()), -width), min(math.ceil(polygon[:, 0].max()) + 1, 2 * width)
            ya, yb = max(math.floor(polygon[:, 1].min()), 0), min(math.ceil(polygon[:, 1].max()) + 1, height)
            if max(xa, 0) < min(xb, width) and ya < yb:  # at least partly on the picture
                shapes.append((order, polygon, (ya, yb, xa, xb), color))
        self._queue.clear()
        masks = {}
        for batch in _batches(sorted(shapes, key=_batch_order)):
            for (order, *_), mask in zip(batch, _fill_masks(batch, self.image.device)):
                masks[order] = mask
        colors = {}
        for order, _, (ya, yb, xa, xb), color in shapes:
            if color not in colors:
                colors[color] = torch.tensor(color, dtype=torch.uint8, device=self.image.device)[:, None, None]
            left, right = max(xa, 0), min(xb, width)  # the part on the picture
            window = self._planes[:, ya:yb, left:right]  # [3, h, w] view into the picture
            mask = masks[order][:, left - xa:right - xa]
            window.copy_(torch.where(mask, colors[color], window))


MASK_BATCH_PIXELS = 1 << 21  # pixels of one batch of masks (shapes x their largest window)


def _batch_order(shape) -> tuple:
    # Outlines of similar length and windows of similar size share a batch: every polygon of a batch is
    # padded to its longest outline and every mask to its largest window.
    _, polygon, (ya, yb, xa, xb), _ = shape
    return len(polygon).bit_length(), (yb - ya) * (xb - xa)


def _batches(shapes: list) -> list:
    """Runs of shapes (sorted by _batch_order) of one outline class whose masks fit MASK_BATCH_PIXELS together."""
    batches, current, tallest, widest = [], [], 0, 0
    for shape in shapes:
        ya, yb, xa, xb = shape[2]
        grown = (len(current) + 1) * max(tallest, yb - ya) * max(widest, xb - xa)
        if current and (grown > MASK_BATCH_PIXELS or _batch_order(shape)[0] != _batch_order(current[0])[0]):
            batches.append(current)
            current, tallest, widest = [], 0, 0
        current.append(shape)
        tallest, widest = max(tallest, yb - ya), max(widest, xb - xa)
    return batches + ([current] if current else [])


def _fill_masks(batch: list, device: torch.device) -> list:
    """Each shape's filled pixels `[h, w]` bool over its own window, from one kornia call for the batch."""
    tallest = max(yb - ya for _, _, (ya, yb, _, _), _ in batch)
    widest = max(xb - xa for _, _, (_, _, xa, xb), _ in batch)
    corners = max(len(polygon) for _, polygon, _, _ in batch)
    local = np.empty((len(batch), corners, 2))  # [B, K, 2], each polygon in its window's pixels
    for index, (_, polygon, (ya, _, xa, _), _) in enumerate(batch):
        local[index, :len(polygon)] = polygon - (xa, ya)
        local[index, len(polygon):] = local[index, len(polygon) - 1]  # shorter outlines repeat their last corner
    blank = torch.zeros(len(batch), 1, tallest, widest, dtype=torch.uint8, device=device)  # [B, 1, h, w]
    ones = torch.ones(len(batch), 1, dtype=torch.uint8, device=device)
    filled = _kornia_fill()(blank, torch.as_tensor(local, dtype=torch.float32, device=device), ones)
    return [filled[index, 0, :yb - ya, :xb - xa].bool() for index, (_, _, (ya, yb, xa, xb), _) in enumerate(batch)]


class OpenCVCanvas:
    """Draws with OpenCV into a numpy picture, immediately."""

    def __init__(self, image: np.ndarray, cv2):
        self.image = image
        self._cv2 = cv2

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace):
        return None

    def fill_convex(self, polygon: np.ndarray, color) -> None:
        self._cv2.fillConvexPoly(self.image, np.asarray(polygon, np.int32), [int(c) for c in color])

    def ellipse(self, center: tuple[int, int], half_axes: tuple[int, int], angle_deg: int, color) -> None:
        self.fill_convex(self._cv2.ellipse2Poly(center, half_axes, angle_deg, 0, 360, 1), color)

    def disc(self, center: tuple[int, int], radius: int, color) -> None:
        self._cv2.circle(self.image, center, radius, [int(c) for c in color], thickness=-1)

    def line(self, start: tuple[int, int], end: tuple[int, int], thickness: int, color) -> None:
        self._cv2.line(self.image, start, end, [int(c) for c in color], thickness=thickness)


def canvas_for(image: Picture, backend: str = "auto"):
    """A canvas drawing into `image` (uint8 `[H, W, 3]`, numpy or a torch tensor on any device) in place.

    Use it as a context manager: shapes are complete in `image` when the `with` block ends.

    backend: "opencv", "kornia" or "auto" (OpenCV for numpy pictures when installed, else kornia).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown drawing backend {backend!r}; use one of {', '.join(map(repr, BACKENDS))}")
    is_tensor = torch.is_tensor(image)
    uint8 = image.dtype == (torch.uint8 if is_tensor else np.uint8)
    contiguous = image.is_contiguous() if is_tensor else image.flags.c_contiguous
    if not uint8 or image.ndim != 3 or image.shape[2] != 3 or not contiguous:
        raise ValueError(f"canvas must be a contiguous uint8 [H, W, 3] picture, got {image.dtype} {list(image.shape)}")
    cv2 = opencv() if backend == "opencv" or (backend == "auto" and not is_tensor) else None
    if backend == "opencv" and cv2 is None:
        raise ImportError("the 'opencv' drawing backend needs OpenCV: pip install opencv-python-headless")
    if cv2 is None:
        return KorniaCanvas(image if is_tensor else torch.from_numpy(image))  # shares the numpy memory
    if is_tensor and image.device.type != "cpu":
        raise ValueError(f"OpenCV draws only into CPU pictures, this one is on {image.device}; "
                         f"use the 'kornia' backend (or 'auto') for it")
    return OpenCVCanvas(image.numpy() if is_tensor else image, cv2)
