"""Pose pictures: OpenPose colours and sizes, the Wan-Animate variant, OpenCV and kornia drawing alike, face crops."""
from __future__ import annotations

import numpy as np
import pytest

from kinema.core.pose.face_crops import NoFaceError, crop_face, face_box, face_boxes, iter_face_crops
from kinema.core.pose.raster import opencv
from kinema.core.pose.render import COLORS, render
from kinema.core.pose.types import BODY, PoseSequence

W, H = 320, 240


def _pose(body_points: dict, hands=None, face=None, width=W, height=H) -> PoseSequence:
    body = np.zeros((1, 20, 3), np.float32)
    for name, (x, y) in body_points.items():
        body[0, BODY[name]] = (x, y, 1.0)
    return PoseSequence(body, np.zeros((1, 2, 21, 3)) if hands is None else hands[None],
                        np.zeros((1, 70, 3)) if face is None else face[None], width, height)


ARM = {"Neck": (160, 60), "RShoulder": (120, 60), "RElbow": (100, 120), "RWrist": (90, 180)}


@pytest.mark.parametrize("backend", ["kornia", "opencv"])
def test_openpose_colours_and_sizes(backend):
    if backend == "opencv" and opencv() is None:
        pytest.skip("OpenCV not installed")
    image = render(_pose(ARM), "openpose", backend=backend)[0]
    # Limb Neck->RShoulder is limb 0: colour 0 at 60 %; joints are full colour (colour i for point i).
    np.testing.assert_array_equal(image[60, 140], [int(c * 0.6) for c in COLORS[0]])
    np.testing.assert_array_equal(image[60, 120], COLORS[BODY["RShoulder"]])
    np.testing.assert_array_equal(image[120, 100], COLORS[BODY["RElbow"]])
    assert image[64, 140].any() and not image[66, 140].any()  # limb half-width 4 px
    np.testing.assert_array_equal(image[120, 104], COLORS[BODY["RElbow"]])  # joint radius 4
    assert not image[120, 106].any()
    assert not image[:20, :20].any()  # nothing drawn at the origin for missing points


def test_both_rasterisers_agree():
    if opencv() is None:
        pytest.skip("OpenCV not installed")
    rng = np.random.default_rng(0)
    body = np.concatenate([rng.uniform(20, 300, (20, 1)), rng.uniform(20, 220, (20, 1)), np.ones((20, 1))], axis=1)
    hand = np.concatenate([rng.uniform(40, 120, (21, 2)), np.ones((21, 1))], axis=1)
    face = np.concatenate([rng.uniform(150, 250, (70, 2)), np.ones((70, 1))], axis=1)
    pose = PoseSequence(body[None], np.stack([hand, hand + [100, 50, 0]])[None], face[None], W, H)
    for style in ("openpose", "wan_animate"):
        a = render(pose, style, backend="opencv")[0]
        b = render(pose, style, backend="kornia")[0]
        drawn_a, drawn_b = a.any(axis=-1), b.any(axis=-1)
        iou = (drawn_a & drawn_b).sum() / (drawn_a | drawn_b).sum()
        same_colour = (a == b).all(axis=-1)[drawn_a & drawn_b].mean()
        # Long limbs and the 2-pixel hand lines may differ from OpenCV by a pixel at their borders
        # (test_pose_raster.py bounds each shape); discs, short limbs and 1-pixel lines are identical.
        assert iou > 0.97 and same_colour > 0.99, (style, iou, same_colour)


def test_wan_animate_style_scales_with_resolution_draws_toes_and_no_face():
    legs = {"LKnee": (200, 300), "LAnkle": (200, 500), "LToe": (260, 520)}
    face = np.zeros((70, 3), np.float32)
    face[:, :2], face[:, 2] = (400, 100), 1.0
    image = render(_pose(legs, face=face, width=1280, height=720), "wan_animate", backend="kornia")[0]
    stick = max(720 // 200 - 1, 1)  # 2 px at 720p
    np.testing.assert_array_equal(image[520, 260], COLORS[BODY["LToe"]])  # toe joint: its own colour
    np.testing.assert_array_equal(image[510, 230], [int(c * 0.6) for c in COLORS[17]])  # ankle->toe limb
    assert image[400, 200 + stick].any() and not image[400, 200 + stick + 2].any()
    assert not image[100, 400].any()  # no face dots in Wan-Animate's pose video
    assert render(_pose(legs, face=face, width=1280, height=720), "openpose", backend="kornia")[0][100, 400].all()
    with pytest.raises(ValueError, match="unknown pose style"):
        render(_pose(legs), "dwpose")


def test_background_and_target_size():
    background = np.full((120, 160, 3), 77, np.uint8)
    image = render(_pose(ARM), "openpose", width=160, height=120, background=background)[0]
    assert image.shape == (120, 160, 3) and (image[0, 0] == 77).all()
    np.testing.assert_array_equal(image[30, 60], COLORS[BODY["RShoulder"]])  # (120, 60) halved
    with pytest.raises(ValueError, match="background must be uint8"):
        render(_pose(ARM), "openpose", background=background)


def _face(x0, y0, x1, y1) -> np.ndarray:
    face = np.zeros((70, 3), np.float32)
    face[:68, 0] = np.linspace(x0, x1, 68)
    face[:68, 1] = np.linspace(y0, y1, 68)[::-1]
    face[:68, 2] = 1.0
    return face


def test_face_box_is_13x_area_biased_upwards():
    x0, y0, x1, y1 = face_box(_face(100, 100, 200, 180), 1000, 1000)
    grow = np.sqrt(1.3)
    assert (x1 - x0) * (y1 - y0) == pytest.approx(100 * 80 * 1.3, rel=0.03)
    assert 100 - x0 == pytest.approx(x1 - 200, abs=1)  # width split evenly
    assert 100 - y0 == pytest.approx(3 * (y1 - 180), abs=1.5)  # 3/4 of the extra height above
    assert 100 - y0 == pytest.approx(80 * (grow - 1) * 0.75, abs=1)
    assert face_box(_face(0, 0, 50, 50), 60, 60)[:2] == (0, 0)  # clipped to the picture


def test_face_crops_hold_the_nearest_box_and_stretch_to_512():
    faces = np.stack([np.zeros((70, 3)), _face(10, 10, 50, 40), np.zeros((70, 3))])
    pose = PoseSequence(np.zeros((3, 20, 3)), np.zeros((3, 2, 21, 3)), faces, 100, 80)
    boxes = face_boxes(pose)
    assert (boxes == boxes[1]).all()
    frame = np.zeros((80, 100, 3), np.uint8)
    x0, y0, x1, y1 = boxes[1]
    frame[y0:y1, x0:x1] = 200
    crops = list(iter_face_crops([frame] * 3, boxes))
    assert len(crops) == 3 and crops[0].shape == (512, 512, 3) and (crops[0] == 200).all()
    assert crop_face(frame, (0, 0, 100, 80), 64).shape == (64, 64, 3)
    with pytest.raises(ValueError, match="2 frames for 3 face boxes"):
        list(iter_face_crops([frame] * 2, boxes))
    with pytest.raises(NoFaceError, match="no face was found"):
        face_boxes(pose.replace(face=np.zeros((3, 70, 3))))
    with pytest.raises(ValueError, match="need the driving pose"):
        face_boxes(pose.replace(retargeted=True))
