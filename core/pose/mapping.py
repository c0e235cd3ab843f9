"""MediaPipe landmarks -> Kinema's OpenPose-style layout (body 18 + toes, hands 21, face 70).

Every function takes MediaPipe's normalized coordinates `[K, >=2]` (x, y in 0..1 of the image
the detector saw) and returns pixel points `(x, y, confidence)` on a `width` x `height` canvas.
Points outside the image get confidence 0: MediaPipe extrapolates hidden joints (e.g. hips below
the frame) with low visibility, and a model must never see an invented limb.
"""
from __future__ import annotations

import numpy as np

from .types import BODY, BODY_POINTS, FACE_POINTS, HAND_POINTS

# MediaPipe Pose-33 index of each body point (the person's left/right on both sides).
# Neck has no MediaPipe landmark: it is the mid-point of the shoulders, as OpenPose defines it.
# MediaPipe has one point per toe (foot_index), which Wan-Animate's toe point corresponds to.
MEDIAPIPE_BODY = {
    "Nose": 0, "RShoulder": 12, "RElbow": 14, "RWrist": 16, "LShoulder": 11, "LElbow": 13, "LWrist": 15,
    "RHip": 24, "RKnee": 26, "RAnkle": 28, "LHip": 23, "LKnee": 25, "LAnkle": 27,
    "REye": 5, "LEye": 2, "REar": 8, "LEar": 7, "LToe": 31, "RToe": 32,
}
MEDIAPIPE_POSE_POINTS = 33

# Face mesh index (or pair of indices, averaged) for each iBUG-68 point, in iBUG order.
# "Right" is the person's right (image left on a frontal face). Correspondence as published by
# PeizhiYan/Mediapipe_2_Dlib_Landmarks; checked by eye on the shared example video.
MESH_TO_IBUG68 = (
    # jaw 0-16, from the person's right ear round the chin to the left ear
    (127,), (234,), (93,), (132, 58), (58, 172), (136,), (150,), (176,), (152,),
    (400,), (379,), (365,), (397, 288), (361,), (323,), (454,), (356,),
    (70,), (63,), (105,), (66,), (107,),  # right brow 17-21
    (336,), (296,), (334,), (293,), (300,),  # left brow 22-26
    (168, 6), (197, 195), (5,), (4,),  # nose bridge 27-30
    (75,), (97,), (2,), (326,), (305,),  # nostrils 31-35
    (33,), (160,), (158,), (133,), (153,), (144,),  # right eye 36-41
    (362,), (385,), (387,), (263,), (373,), (380,),  # left eye 42-47
    (61,), (39,), (37,), (0,), (267,), (269,), (291,), (321,), (314,), (17,), (84,), (91,),  # outer lips 48-59
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),  # inner lips 60-67
)
# Pupils 68 (right) and 69 (left) are the iris centres, present only in the 478-point mesh.
MESH_RIGHT_IRIS, MESH_LEFT_IRIS = 468, 473
MESH_POINTS, MESH_POINTS_WITH_IRISES = 468, 478


def _inside(xy: np.ndarray) -> np.ndarray:
    return (xy[:, 0] >= 0) & (xy[:, 0] <= 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= 1)


def _to_pixels(xy: np.ndarray, confidence: np.ndarray, width: int, height: int) -> np.ndarray:
    confidence = np.where(_inside(xy), confidence, 0.0)
    return np.stack([xy[:, 0] * width, xy[:, 1] * height, confidence], axis=-1).astype(np.float32)


def body_from_mediapipe(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pose-33 `[33, 3]` (x, y, visibility) -> body `[20, 3]`."""
    if landmarks.shape != (MEDIAPIPE_POSE_POINTS, 3):
        raise ValueError(f"MediaPipe pose landmarks must be [33, 3] (x, y, visibility), got {list(landmarks.shape)}")
    points = _to_pixels(landmarks[:, :2], landmarks[:, 2], width, height)  # [33, 3]
    body = np.zeros((BODY_POINTS, 3), np.float32)
    for name, index in MEDIAPIPE_BODY.items():
        body[BODY[name]] = points[index]
    shoulders = body[[BODY["RShoulder"], BODY["LShoulder"]]]
    body[BODY["Neck"]] = (*shoulders[:, :2].mean(axis=0), shoulders[:, 2].min())
    return body


def hand_from_mediapipe(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Hand `[21, >=2]` -> `[21, 3]`; MediaPipe gives no per-point score, so present = 1."""
    if landmarks.shape[0] != HAND_POINTS:
        raise ValueError(f"MediaPipe hand landmarks must have 21 points, got {landmarks.shape[0]}")
    return _to_pixels(landmarks[:, :2], np.ones(HAND_POINTS), width, height)


def face_from_mediapipe(mesh: np.ndarray, width: int, height: int) -> np.ndarray:
    """Face mesh `[468 or 478, >=2]` -> face-70 `[70, 3]` (pupils only from the 478-point mesh)."""
    if mesh.shape[0] not in (MESH_POINTS, MESH_POINTS_WITH_IRISES):
        raise ValueError(f"a MediaPipe face mesh has 468 or 478 points, got {mesh.shape[0]}")
    xy = np.stack([mesh[list(group), :2].mean(axis=0) for group in MESH_TO_IBUG68])  # [68, 2]
    confidence = np.ones(FACE_POINTS)
    if mesh.shape[0] == MESH_POINTS_WITH_IRISES:
        xy = np.concatenate([xy, mesh[[MESH_RIGHT_IRIS, MESH_LEFT_IRIS], :2]])
    else:
        xy = np.concatenate([xy, np.zeros((2, 2))])
        confidence[68:] = 0.0
    return _to_pixels(xy, confidence, width, height)
