"""The kornia drawing primitives against analytic geometry, against OpenCV where it is installed, and per device."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kinema.core.pose.raster import ARC_SAG, canvas_for, opencv, stroke_radius
from kinema.core.pose.render import STYLES, draw_pose
from kinema.core.pose.types import PoseSequence

W, H = 160, 120
WHITE = (255, 255, 255)
YS, XS = np.mgrid[0:H, 0:W].astype(np.float64)  # pixel centres


def _drawn(backend: str, draw) -> np.ndarray:
    """The pixels `[H, W]` one primitive covers on a black picture."""
    picture = np.zeros((H, W, 3), np.uint8)
    with canvas_for(picture, backend) as canvas:
        draw(canvas)
    return picture.any(axis=-1)


def _distance_to_segment(start, end) -> np.ndarray:
    (x0, y0), (x1, y1) = start, end
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    t = np.zeros_like(XS) if length2 == 0 else np.clip(((XS - x0) * dx + (YS - y0) * dy) / length2, 0, 1)
    return np.hypot(XS - x0 - t * dx, YS - y0 - t * dy)


def _segments(count: int, seed: int, low=-30, high=190):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        a, b = rng.integers(low, high, 2), rng.integers(low, high, 2)
        yield (int(a[0]), int(a[1] * H / W)), (int(b[0]), int(b[1] * H / W))


def _backends():
    return ["kornia"] + (["opencv"] if opencv() is not None else [])


@pytest.mark.parametrize("backend", _backends())
def test_discs_are_the_pixel_centres_within_the_radius(backend):
    # cv2.circle fills exactly these (OpenCV 4 and 5); the kornia outline passes between the rings r^2 and r^2 + 1.
    for radius in range(0, 16):
        for center in ((80, 60), (3, 5), (W - 2, H - 7), (-4, 60)):  # inside, and cut by the picture's edges
            expected = (XS - center[0]) ** 2 + (YS - center[1]) ** 2 <= radius * radius
            np.testing.assert_array_equal(_drawn(backend, lambda c: c.disc(center, radius, WHITE)), expected,
                                          err_msg=f"radius {radius} at {center}")


def test_thick_lines_are_the_band_around_the_segment():
    for thickness in (2, 3, 4, 6):
        band = stroke_radius(thickness)
        for start, end in _segments(20, seed=thickness):
            distance = _distance_to_segment(start, end)
            drawn = _drawn("kornia", lambda c: c.line(start, end, thickness, WHITE))
            assert not (drawn & (distance > band + 1e-6)).any(), (thickness, start, end)
            assert drawn[distance <= band - ARC_SAG - 1e-6].all(), (thickness, start, end)


def test_opencv_thick_lines_lie_within_half_a_pixel_of_that_band():
    # The band's width is OpenCV's: its own pixels stray at most half a pixel either side of it, while
    # kornia's draw_line would be one pixel wide (a third of OpenCV's 2-pixel hand lines).
    cv2 = opencv()
    if cv2 is None:
        pytest.skip("OpenCV not installed")
    for thickness in (2, 3, 4, 6):
        band = stroke_radius(thickness)
        ours = theirs = 0
        for start, end in _segments(20, seed=10 + thickness, low=10, high=150):
            distance = _distance_to_segment(start, end)
            drawn = _drawn("opencv", lambda c: c.line(start, end, thickness, WHITE))
            assert not (drawn & (distance > band + 0.5)).any() and drawn[distance <= band - 0.5].all()
            theirs += drawn.sum()
            ours += _drawn("kornia", lambda c: c.line(start, end, thickness, WHITE)).sum()
        assert ours == pytest.approx(theirs, rel=0.07), thickness


def test_one_pixel_lines_have_one_pixel_per_step_nearest_the_segment():
    for start, end in _segments(80, seed=3, low=0, high=160):
        (x0, y0), (x1, y1) = start, end
        drawn = _drawn("kornia", lambda c: c.line(start, end, 1, WHITE))
        if abs(x1 - x0) >= abs(y1 - y0):  # one pixel per column, its row nearest the line
            columns = np.arange(min(x0, x1), max(x0, x1) + 1)
            exact = y0 + (columns - x0) * (y1 - y0) / (x1 - x0) if x1 != x0 else np.full(len(columns), y0)
            rows = np.where(drawn[:, columns].any(axis=0), drawn[:, columns].argmax(axis=0), -1)
            assert (drawn[:, columns].sum(axis=0) == 1).all() and (np.abs(rows - exact) <= 0.5).all(), (start, end)
        else:
            rows = np.arange(min(y0, y1), max(y0, y1) + 1)
            exact = x0 + (rows - y0) * (x1 - x0) / (y1 - y0)
            columns = drawn[rows].argmax(axis=1)
            assert (drawn[rows].sum(axis=1) == 1).all() and (np.abs(columns - exact) <= 0.5).all(), (start, end)
        assert drawn.sum() == max(abs(x1 - x0), abs(y1 - y0)) + 1
        if opencv() is not None:  # and exactly OpenCV's line, ties included
            np.testing.assert_array_equal(drawn, _drawn("opencv", lambda c: c.line(start, end, 1, WHITE)))


def test_limb_ellipses_match_opencv():
    if opencv() is None:
        pytest.skip("OpenCV not installed")
    rng = np.random.default_rng(0)
    for _ in range(100):
        center = (int(rng.integers(-10, W + 10)), int(rng.integers(-10, H + 10)))
        half_axes, angle = (int(rng.integers(0, 40)), int(rng.integers(1, 6))), int(rng.integers(-180, 180))
        np.testing.assert_array_equal(_drawn("kornia", lambda c: c.ellipse(center, half_axes, angle, WHITE)),
                                      _drawn("opencv", lambda c: c.ellipse(center, half_axes, angle, WHITE)))
    # Longer limbs: OpenCV also paints its outline's pixels where an edge crosses a row exactly between two
    # pixel centres; the extra pixels are OpenCV's alone and each touches the shared shape.
    for _ in range(30):
        half_axes, angle = (int(rng.integers(40, 75)), int(rng.integers(1, 6))), int(rng.integers(-180, 180))
        ours = _drawn("kornia", lambda c: c.ellipse((80, 60), half_axes, angle, WHITE))
        theirs = _drawn("opencv", lambda c: c.ellipse((80, 60), half_axes, angle, WHITE))
        extra = theirs & ~ours
        assert not (ours & ~theirs).any() and extra.sum() <= 0.05 * theirs.sum()
        grown = np.zeros_like(ours)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                grown |= np.roll(ours, (dy, dx), axis=(0, 1))
        assert grown[extra].all()


def _pose() -> PoseSequence:
    rng = np.random.default_rng(1)
    body = np.c_[rng.uniform(-20, W + 20, (20, 2)), np.ones(20)]
    hands = np.stack([np.c_[rng.uniform(0, W, (21, 2)), np.ones(21)] for _ in range(2)])
    face = np.c_[rng.uniform(40, 120, (70, 2)), np.ones(70)]
    return PoseSequence(body[None], hands[None], face[None], W, H)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_pictures_on_any_device_match_numpy(device):
    pose = _pose()
    for style in STYLES.values():
        expected = draw_pose(np.zeros((H, W, 3), np.uint8), pose.body[0], pose.hands[0], pose.face[0], style,
                             backend="kornia")
        picture = torch.full((H, W, 3), 0, dtype=torch.uint8, device=device)
        drawn = draw_pose(picture, pose.body[0], pose.hands[0], pose.face[0], style)  # tensors: kornia
        assert drawn is picture and picture.device.type == device
        np.testing.assert_array_equal(picture.cpu().numpy(), expected)


def test_canvas_errors_name_the_fix():
    with pytest.raises(ValueError, match="unknown drawing backend 'numpy'"):
        canvas_for(np.zeros((4, 4, 3), np.uint8), "numpy")
    with pytest.raises(ValueError, match=r"contiguous uint8 \[H, W, 3\]"):
        canvas_for(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"contiguous uint8 \[H, W, 3\]"):
        canvas_for(torch.zeros(3, 4, 4, dtype=torch.uint8))
    if opencv() is not None and torch.cuda.is_available():
        with pytest.raises(ValueError, match="use the 'kornia' backend"):
            canvas_for(torch.zeros(4, 4, 3, dtype=torch.uint8, device="cuda"), "opencv")


def test_shapes_far_off_the_picture_draw_nothing_there():
    picture = np.zeros((H, W, 3), np.uint8)
    with canvas_for(picture, "kornia") as canvas:
        canvas.disc((-50, -50), 4, WHITE)
        canvas.line((W + 10, 0), (W + 90, H), 3, WHITE)
        canvas.ellipse((80, -40), (30, 4), 0, WHITE)
    assert not picture.any()
    assert math.isclose(stroke_radius(2), 1.5) and math.isclose(stroke_radius(3), 2.25)
