"""Synthetic people with known truth: bone lengths and angles in closed form, for checks and demos.

A skeleton is built outward from the neck (retarget.BONES order), each bone at a given length and
image angle (degrees, y down). The dancer waves its arms, bends its knees and turns its head on
smooth periodic curves, with a face (a 68-point ellipse of eyes, brows, nose and mouth) and fanned
hands, so every part a pose video carries is present.
"""
from __future__ import annotations

import numpy as np

from .retarget import BONES
from .types import BODY, FACE_POINTS, HAND_POINTS, LEFT, RIGHT, PoseSequence

NECK = BODY["Neck"]
# Right-side bones and their left twins (lengths are symmetric).
TWINS = {(1, 5): (1, 2), (5, 6): (2, 3), (6, 7): (3, 4), (1, 11): (1, 8), (11, 12): (8, 9), (12, 13): (9, 10),
         (13, 18): (10, 19), (0, 15): (0, 14), (15, 17): (14, 16)}
REST_ANGLES = {  # a person standing, facing the camera
    (1, 2): 180, (2, 3): 100, (3, 4): 95, (1, 5): 0, (5, 6): 80, (6, 7): 85,
    (1, 8): 100, (8, 9): 90, (9, 10): 90, (10, 19): 150, (1, 11): 80, (11, 12): 90, (12, 13): 90, (13, 18): 30,
    (1, 0): -90, (0, 14): -150, (14, 16): 180, (0, 15): -30, (15, 17): 0,
}


def bone_lengths(scale: float = 1.0, arm: float = 1.0, leg: float = 1.0) -> dict:
    """Bone -> length in pixels; `arm` / `leg` change the proportions, `scale` the size."""
    base = {(1, 2): 40, (2, 3): 60 * arm, (3, 4): 55 * arm, (1, 8): 120, (8, 9): 90 * leg, (9, 10): 85 * leg,
            (10, 19): 25, (1, 0): 45, (0, 14): 12, (14, 16): 14}
    base.update({bone: base[twin] for bone, twin in TWINS.items()})
    return {bone: length * scale for bone, length in base.items()}


def skeleton(neck, lengths: dict, angles: dict) -> np.ndarray:
    """Body `[20, 3]` with every joint present."""
    body = np.zeros((20, 3), np.float64)
    body[NECK] = (*neck, 1.0)
    for bone in BONES:
        parent, child = bone
        theta = np.radians(angles[bone])
        body[child] = (*(body[parent, :2] + lengths[bone] * np.array([np.cos(theta), np.sin(theta)])), 1.0)
    return body.astype(np.float32)


def face_around(nose: np.ndarray, size: float, turn: float = 0.0) -> np.ndarray:
    """A 68-point face `[70, 3]` (pupils included) of box size about `size`, centred near the nose."""
    face = np.zeros((FACE_POINTS, 3), np.float32)
    angle = np.linspace(np.pi * 0.05, np.pi * 0.95, 17)
    jaw = np.stack([-np.cos(angle) * 0.5, np.sin(angle) * 0.55 - 0.1], axis=-1)  # 0-16 ear to ear under the nose
    brows = np.stack([np.linspace(-0.42, -0.08, 5), np.full(5, -0.45)], -1), \
        np.stack([np.linspace(0.08, 0.42, 5), np.full(5, -0.45)], -1)
    bridge = np.stack([np.zeros(4), np.linspace(-0.35, -0.05, 4)], -1)
    nostrils = np.stack([np.linspace(-0.12, 0.12, 5), np.full(5, 0.02)], -1)
    ring = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    eyes = [np.stack([c + 0.1 * np.cos(ring), -0.3 + 0.04 * np.sin(ring)], -1) for c in (-0.25, 0.25)]
    outer = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    inner = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lips = [np.stack([0.22 * np.cos(outer), 0.22 + 0.07 * np.sin(outer)], -1),
            np.stack([0.15 * np.cos(inner), 0.22 + 0.03 * np.sin(inner)], -1)]
    pupils = np.array([[-0.25, -0.3], [0.25, -0.3]])
    points = np.concatenate([jaw, *brows, bridge, nostrils, *eyes, *lips, pupils])  # [70, 2]
    points[:, 0] += turn * 0.1  # a head turn shifts the features sideways
    face[:, :2] = nose + points * size
    face[:, 2] = 1.0
    return face


def hands_at(body: np.ndarray, size: float) -> np.ndarray:
    """Two 21-point hands `[2, 21, 3]`: a fan of points from each wrist, along its forearm."""
    hands = np.zeros((2, HAND_POINTS, 3), np.float32)
    for side, (elbow, wrist) in ((LEFT, (BODY["LElbow"], BODY["LWrist"])), (RIGHT, (BODY["RElbow"], BODY["RWrist"]))):
        along = body[wrist, :2] - body[elbow, :2]
        base = np.arctan2(along[1], along[0])
        spread = base + np.linspace(-0.6, 0.6, HAND_POINTS)
        reach = size * (0.3 + 0.7 * (np.arange(HAND_POINTS) % 4 + 1) / 4)
        hands[side, :, :2] = body[wrist, :2] + np.stack([np.cos(spread), np.sin(spread)], -1) * reach[:, None]
        hands[side, 0, :2] = body[wrist, :2]
        hands[side, :, 2] = 1.0
    return hands


def dance_angles(t: float) -> dict:
    """Bone angles at time `t` (seconds): arms wave, knees bend, head tilts; smooth and periodic."""
    angles = dict(REST_ANGLES)
    wave = np.sin(2 * np.pi * 0.7 * t)
    angles[(2, 3)] += 60 * wave
    angles[(3, 4)] += 80 * np.sin(2 * np.pi * 0.9 * t + 0.5)
    angles[(5, 6)] -= 55 * np.sin(2 * np.pi * 0.6 * t + 1.0)
    angles[(6, 7)] -= 75 * np.sin(2 * np.pi * 1.1 * t)
    angles[(8, 9)] += 15 * np.sin(2 * np.pi * 0.5 * t)
    angles[(11, 12)] -= 15 * np.sin(2 * np.pi * 0.5 * t)
    angles[(9, 10)] -= 10 * np.sin(2 * np.pi * 0.5 * t)
    angles[(12, 13)] += 10 * np.sin(2 * np.pi * 0.5 * t)
    for bone in ((1, 0), (0, 14), (14, 16), (0, 15), (15, 17)):
        angles[bone] += 12 * np.sin(2 * np.pi * 0.4 * t)
    return angles


def dancer(frames: int, fps: float = 30.0, lengths: dict | None = None, width: int = 1280, height: int = 720,
           neck=(640.0, 200.0), face_size: float = 60.0, hand_size: float = 18.0) -> tuple[PoseSequence, list]:
    """A full-body dancer on a `width` x `height` canvas and the bone angles of every frame (the truth)."""
    lengths = lengths or bone_lengths(1.0)
    bodies, hands, faces, truth = [], [], [], []
    for n in range(frames):
        t = n / fps
        angles = dance_angles(t)
        body = skeleton((neck[0] + 20 * np.sin(2 * np.pi * 0.3 * t), neck[1] + 6 * np.sin(2 * np.pi * 0.8 * t)),
                        lengths, angles)
        bodies.append(body)
        hands.append(hands_at(body, hand_size))
        faces.append(face_around(body[BODY["Nose"], :2], face_size, np.sin(2 * np.pi * 0.4 * t)))
        truth.append(angles)
    pose = PoseSequence(np.stack(bodies), np.stack(hands), np.stack(faces), width, height, fps=fps,
                        source="synthetic dancer")
    return pose, truth


def photo(lengths: dict, width: int, height: int, neck, face_size: float, hand_size: float = 20.0) -> PoseSequence:
    """A one-frame reference photo of a person standing at rest (face and hands included)."""
    body = skeleton(neck, lengths, REST_ANGLES)
    return PoseSequence(body[None], hands_at(body, hand_size)[None],
                        face_around(body[BODY["Nose"], :2], face_size)[None], width, height, source="synthetic photo")
