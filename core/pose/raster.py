"""The four drawing primitives pose rendering needs, on an RGB uint8 canvas `[H, W, 3]`.

OpenCV draws them exactly as OpenPose / DWPose / Wan-Animate do (no anti-aliasing), so it is used
when installed. Without it, a small numpy rasteriser fills the same shapes by testing pixel
centres; the two agree to within a pixel on each shape's border (tests compare them).
"""
from __future__ import annotations

import math

import numpy as np


def opencv():
    """The cv2 module, or None when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def ellipse_polygon(center: tuple[int, int], half_axes: tuple[int, int], angle_deg: int) -> np.ndarray:
    """Vertices `[K, 2]` int32 of an ellipse outline sampled every degree, like cv2.ellipse2Poly(delta=1)."""
    theta = math.radians(angle_deg)
    t = np.radians(np.arange(0, 361))
    x = half_axes[0] * np.cos(t)
    y = half_axes[1] * np.sin(t)
    points = np.stack([center[0] + x * math.cos(theta) - y * math.sin(theta),
                       center[1] + x * math.sin(theta) + y * math.cos(theta)], axis=-1)
    points = np.round(points).astype(np.int32)
    keep = np.ones(len(points), bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=-1)  # drop repeated vertices like OpenCV
    return points[keep]


class NumpyCanvas:
    """Fills shapes by testing which pixel centres (integer coordinates) they cover."""

    def __init__(self, image: np.ndarray):
        self.image = image  # [H, W, 3] uint8, drawn in place

    def _window(self, x0: float, y0: float, x1: float, y1: float):
        height, width = self.image.shape[:2]
        xa, xb = max(int(math.floor(x0)), 0), min(int(math.ceil(x1)), width - 1)
        ya, yb = max(int(math.floor(y0)), 0), min(int(math.ceil(y1)), height - 1)
        if xa > xb or ya > yb:
            return None
        ys, xs = np.mgrid[ya:yb + 1, xa:xb + 1]
        return (slice(ya, yb + 1), slice(xa, xb + 1)), xs.astype(np.float64), ys.astype(np.float64)

    def _paint(self, window, inside: np.ndarray, color) -> None:
        self.image[window][inside] = np.asarray(color, np.uint8)

    def fill_convex(self, polygon: np.ndarray, color) -> None:
        # Scanline fill between the leftmost and rightmost edge crossing of each row, as OpenCV's
        # fillConvexPoly does: an ellipse outline rounded to whole pixels is only nearly convex.
        polygon = np.asarray(polygon, np.float64).reshape(-1, 2)
        height, width = self.image.shape[:2]
        top, bottom = max(int(polygon[:, 1].min()), 0), min(int(polygon[:, 1].max()), height - 1)
        if top > bottom:
            return
        start, end = polygon, np.roll(polygon, -1, axis=0)  # edges [K, 2] -> [K, 2]
        rows = np.arange(top, bottom + 1, dtype=np.float64)[:, None]  # [R, 1]
        low, high = np.minimum(start[:, 1], end[:, 1]), np.maximum(start[:, 1], end[:, 1])  # [K]
        crosses = (rows >= low) & (rows <= high)  # [R, K]
        flat = high == low
        t = np.where(flat, 0.0, (rows - start[:, 1]) / np.where(flat, 1.0, end[:, 1] - start[:, 1]))
        xs = start[:, 0] + t * (end[:, 0] - start[:, 0])  # [R, K]
        left = np.where(crosses, np.where(flat, np.minimum(start[:, 0], end[:, 0]), xs), np.inf).min(axis=1)
        right = np.where(crosses, np.where(flat, np.maximum(start[:, 0], end[:, 0]), xs), -np.inf).max(axis=1)
        color = np.asarray(color, np.uint8)
        for row, a, b in zip(range(top, bottom + 1), np.round(left), np.round(right)):
            if a <= b and b >= 0 and a < width:
                self.image[row, max(int(a), 0):min(int(b), width - 1) + 1] = color

    def ellipse(self, center: tuple[int, int], half_axes: tuple[int, int], angle_deg: int, color) -> None:
        self.fill_convex(ellipse_polygon(center, half_axes, angle_deg), color)

    def disc(self, center: tuple[int, int], radius: int, color) -> None:
        cx, cy = center
        found = self._window(cx - radius, cy - radius, cx + radius, cy + radius)
        if found is not None:
            window, xs, ys = found
            self._paint(window, (xs - cx) ** 2 + (ys - cy) ** 2 <= radius * radius + radius, color)

    def line(self, start: tuple[int, int], end: tuple[int, int], thickness: int, color) -> None:
        (x0, y0), (x1, y1) = start, end
        half = max(thickness, 1) / 2.0
        found = self._window(min(x0, x1) - half, min(y0, y1) - half, max(x0, x1) + half, max(y0, y1) + half)
        if found is None:
            return
        window, xs, ys = found
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = np.zeros_like(xs) if length2 == 0 else np.clip(((xs - x0) * dx + (ys - y0) * dy) / length2, 0, 1)
        distance2 = (xs - x0 - t * dx) ** 2 + (ys - y0 - t * dy) ** 2
        self._paint(window, distance2 <= half * half + 0.25, color)


class OpenCVCanvas:
    def __init__(self, image: np.ndarray, cv2):
        self.image = image
        self._cv2 = cv2

    def fill_convex(self, polygon: np.ndarray, color) -> None:
        self._cv2.fillConvexPoly(self.image, np.asarray(polygon, np.int32), [int(c) for c in color])

    def ellipse(self, center: tuple[int, int], half_axes: tuple[int, int], angle_deg: int, color) -> None:
        self.fill_convex(self._cv2.ellipse2Poly(center, half_axes, angle_deg, 0, 360, 1), color)

    def disc(self, center: tuple[int, int], radius: int, color) -> None:
        self._cv2.circle(self.image, center, radius, [int(c) for c in color], thickness=-1)

    def line(self, start: tuple[int, int], end: tuple[int, int], thickness: int, color) -> None:
        self._cv2.line(self.image, start, end, [int(c) for c in color], thickness=thickness)


def canvas_for(image: np.ndarray, backend: str = "auto"):
    """A canvas drawing into `image` in place: backend "opencv", "numpy" or "auto" (OpenCV when installed)."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or not image.flags.c_contiguous:
        raise ValueError(f"canvas must be a contiguous uint8 [H, W, 3] array, got {image.dtype} {list(image.shape)}")
    if backend not in ("auto", "opencv", "numpy"):
        raise ValueError(f"unknown drawing backend {backend!r}; use 'auto', 'opencv' or 'numpy'")
    cv2 = opencv() if backend != "numpy" else None
    if backend == "opencv" and cv2 is None:
        raise ImportError("the 'opencv' drawing backend needs OpenCV: pip install opencv-python-headless")
    return OpenCVCanvas(image, cv2) if cv2 is not None else NumpyCanvas(image)
