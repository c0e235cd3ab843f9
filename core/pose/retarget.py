"""Retargeting a driving pose onto the person of a reference photo.

Each bone keeps its direction from the driving frame and gets the photo's proportions: its length
is the driving length times (photo length / driving length in the first frame showing it), so
foreshortening in the video is kept while arms, legs and head take the photo's sizes. The
skeleton is rebuilt outward from the neck. Placement is fixed on the first frame: the neck (or,
for full-body shots, the ground under the feet) lands where the photo's is, and later movement of
the neck is scaled by the overall size ratio so steps and jumps shrink or grow with the character.
Hands follow their wrist, scaled by the forearm's ratio; face points follow the nose, scaled so the
face takes the photo's face size.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import BODY, LEFT, RIGHT, PoseSequence

# (parent, child) body indices, parents always listed before their children: a tree from the neck.
BONES = (
    (1, 2), (2, 3), (3, 4), (1, 5), (5, 6), (6, 7),  # shoulders, arms
    (1, 8), (8, 9), (9, 10), (10, 19), (1, 11), (11, 12), (12, 13), (13, 18),  # hips, legs, toes
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),  # head
)
ROOT = BODY["Neck"]
# Bones of the person's right side and their left counterparts.
MIRROR = {(1, 2): (1, 5), (2, 3): (5, 6), (3, 4): (6, 7), (1, 8): (1, 11), (8, 9): (11, 12), (9, 10): (12, 13),
          (10, 19): (13, 18), (0, 14): (0, 15), (14, 16): (15, 17)}
MIRROR_JOINT = {2: 5, 3: 6, 4: 7, 8: 11, 9: 12, 10: 13, 14: 15, 16: 17, 19: 18}
MIRROR_JOINT.update({left: right for right, left in list(MIRROR_JOINT.items())})
FOREARM = {LEFT: (6, 7), RIGHT: (3, 4)}  # hand slot -> the bone ending at its wrist
HEAD_BONES = ((0, 14), (0, 15))  # nose -> eyes: the face's size when the photo's face was not found
IBUG_POINTS = 68
GROUND_POINTS = (BODY["RAnkle"], BODY["LAnkle"], BODY["RToe"], BODY["LToe"])
HIPS = (BODY["RHip"], BODY["LHip"])
ANCHORS = ("auto", "neck", "feet")


class RetargetError(ValueError):
    """The reference or driving pose lacks what retargeting needs; the message says what to change."""


@dataclass(frozen=True)
class RetargetSettings:
    anchor: str = "auto"  # "neck", "feet" (ground line + hip centre), or "auto" = feet when both show ankles
    symmetric: bool = True  # left and right bones take the longer of the pair (foreshortening only shortens)
    # Drop joints the photo does not show on either side (the legs of a half-body photo): the character
    # has no visible legs to move, and a skeleton drawn there would make the model invent them.
    reference_joints_only: bool = True
    threshold: float = 0.3  # points below this confidence are treated as missing

    def __post_init__(self):
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {self.anchor!r}; choose one of {', '.join(ANCHORS)}")


@dataclass(frozen=True)
class Calibration:
    ratios: dict  # bone -> reference length / driving length
    scale: float  # overall size ratio: median of the measured bone ratios
    offset: np.ndarray  # [2] pixels: reference position = driving position * scale + offset
    anchor: str  # the anchor actually used ("neck" or "feet")
    frame: int  # the driving frame the placement was fixed on
    joints: np.ndarray  # [20] bool: body joints that may appear in the output
    face_scale: np.ndarray  # [2] x, y scale of face points about the nose


def _length(points: np.ndarray, bone) -> float:
    return float(np.linalg.norm(points[bone[1], :2] - points[bone[0], :2]))


def _measured_ratios(reference: np.ndarray, driving: np.ndarray, threshold: float) -> dict:
    """Bone -> ratio, for bones seen in the photo and in some driving frame (the first one showing them)."""
    ratios = {}
    for bone in BONES:
        if reference[bone[0], 2] < threshold or reference[bone[1], 2] < threshold:
            continue
        both = (driving[:, bone[0], 2] >= threshold) & (driving[:, bone[1], 2] >= threshold)  # [N]
        if not both.any():
            continue
        driven = _length(driving[int(np.argmax(both))], bone)
        if driven > 1e-6:
            ratios[bone] = _length(reference, bone) / driven
    return ratios


def _symmetrise(ratios: dict) -> dict:
    out = dict(ratios)
    for right, left in MIRROR.items():
        known = [ratios[bone] for bone in (right, left) if bone in ratios]
        if known:
            out[right] = out[left] = max(known)
    return out


def _pose_frame(driving: np.ndarray, frame: int, ratios: dict, scale: float, offset: np.ndarray,
                threshold: float, joints: np.ndarray) -> np.ndarray:
    """One retargeted body `[20, 3]`; a joint whose chain to the neck is broken stays missing."""
    source = driving[frame]
    out = np.zeros_like(source)
    if source[ROOT, 2] < threshold:
        return out
    out[ROOT] = (*(source[ROOT, :2] * scale + offset), source[ROOT, 2])
    for bone in BONES:
        parent, child = bone
        if out[parent, 2] < threshold or source[child, 2] < threshold or not joints[child]:
            continue
        out[child, :2] = out[parent, :2] + (source[child, :2] - source[parent, :2]) * ratios.get(bone, scale)
        out[child, 2] = source[child, 2]
    return out


def _offset(reference: np.ndarray, driving: np.ndarray, frame: int, ratios: dict, scale: float,
            anchor: str, threshold: float, joints: np.ndarray) -> tuple[np.ndarray, str]:
    if reference[ROOT, 2] < threshold:
        raise RetargetError("the reference photo shows no neck (both shoulders are needed); use a photo where "
                            "the person's shoulders are visible")
    unplaced = _pose_frame(driving, frame, ratios, scale, np.zeros(2), threshold, joints)  # as if offset = 0
    ground_ref = [i for i in GROUND_POINTS if reference[i, 2] >= threshold]
    ground_out = [i for i in GROUND_POINTS if unplaced[i, 2] >= threshold]
    if anchor == "auto":
        anchor = "feet" if ground_ref and ground_out else "neck"
    if anchor == "neck":
        return reference[ROOT, :2] - unplaced[ROOT, :2], "neck"
    if not ground_ref or not ground_out:
        raise RetargetError("anchor 'feet' needs ankles or toes in both the reference photo and the first driving "
                            "frame; use anchor 'neck' (or 'auto') for half-body shots")
    dy = reference[ground_ref, 1].max() - unplaced[ground_out, 1].max()  # lowest foot on the photo's ground line
    hips_seen = all(reference[i, 2] >= threshold and unplaced[i, 2] >= threshold for i in HIPS)
    centre = list(HIPS) if hips_seen else [ROOT]  # hip centre over hip centre, else neck over neck
    dx = reference[centre, 0].mean() - unplaced[centre, 0].mean()
    return np.array([dx, dy]), "feet"


def calibrate(driving: PoseSequence, reference: PoseSequence, settings: RetargetSettings = RetargetSettings()) -> Calibration:
    """Bone ratios, overall scale and placement offset from the photo (frame 0 of `reference`) and the driver."""
    ref = reference.body[0]
    ratios = _measured_ratios(ref, driving.body, settings.threshold)
    if not ratios:
        raise RetargetError("the reference photo and the driving video share no bone with both ends found; "
                            "the photo should show the person's upper body (shoulders, arms, head) clearly")
    if settings.symmetric:
        ratios = _symmetrise(ratios)
    scale = float(np.median(list(ratios.values())))
    rooted = np.flatnonzero(driving.body[:, ROOT, 2] >= settings.threshold)
    if len(rooted) == 0:
        raise RetargetError("no driving frame shows a neck (both shoulders); the driving video needs the "
                            "person's upper body in view")
    frame = int(rooted[0])
    joints = _allowed_joints(ref, settings)
    offset, anchor = _offset(ref, driving.body, frame, ratios, scale, settings.anchor, settings.threshold, joints)
    return Calibration(ratios, scale, offset, anchor, frame, joints, _face_scale(reference, driving, ratios, scale))


def _allowed_joints(reference: np.ndarray, settings: RetargetSettings) -> np.ndarray:
    seen = reference[:, 2] >= settings.threshold  # [20]
    if not settings.reference_joints_only:
        return np.ones_like(seen)
    return seen | np.array([seen[MIRROR_JOINT.get(j, j)] for j in range(len(seen))])


def _face_size(face: np.ndarray) -> np.ndarray | None:
    """Width and height `[2]` of the 68 face points' bounding box, or None without a face."""
    points = face[:IBUG_POINTS]
    points = points[points[:, 2] > 0, :2]
    return points.max(axis=0) - points.min(axis=0) if len(points) > 1 else None


def _face_scale(reference: PoseSequence, driving: PoseSequence, ratios: dict, scale: float) -> np.ndarray:
    """Per-axis face scale: the photo's face box over the driving face box (median over frames, so an
    open mouth or a turned head in one frame does not set the size), or the head bones' ratio."""
    ref_size = _face_size(reference.face[0])
    driven = [size for size in map(_face_size, driving.face) if size is not None]
    if ref_size is not None and driven and np.all(ref_size > 0):
        return ref_size / np.maximum(np.median(np.stack(driven), axis=0), 1e-6)
    known = [ratios[bone] for bone in HEAD_BONES if bone in ratios]
    return np.full(2, float(np.mean(known)) if known else ratios.get((1, 0), scale))


def _follow(points: np.ndarray, driving_anchor: np.ndarray, placed_anchor: np.ndarray, ratio,
            threshold: float) -> np.ndarray:
    """Moves points `[K, 3]` with their anchor joint and scales them about it; all missing without an anchor."""
    if driving_anchor[2] < threshold or placed_anchor[2] < threshold:
        return np.zeros_like(points)
    out = points.copy()
    out[:, :2] = placed_anchor[:2] + (points[:, :2] - driving_anchor[:2]) * ratio
    out[points[:, 2] <= 0] = 0.0
    return out


def retarget(driving: PoseSequence, reference: PoseSequence, settings: RetargetSettings = RetargetSettings()) -> PoseSequence:
    """The driving motion with the reference photo's proportions, on the photo's canvas."""
    calibration = calibrate(driving, reference, settings)
    threshold = settings.threshold
    bodies, hands, faces = [], [], []
    for frame in range(driving.frame_count):
        body = _pose_frame(driving.body, frame, calibration.ratios, calibration.scale, calibration.offset, threshold,
                           calibration.joints)
        source = driving.body[frame]
        hands.append(np.stack([
            _follow(driving.hands[frame, side], source[bone[1]], body[bone[1]],
                    calibration.ratios.get(bone, calibration.scale), threshold)
            for side, bone in sorted(FOREARM.items())
        ]))
        faces.append(_follow(driving.face[frame], source[BODY["Nose"]], body[BODY["Nose"]], calibration.face_scale,
                             threshold))
        bodies.append(body)
    return driving.replace(body=np.stack(bodies), hands=np.stack(hands), face=np.stack(faces),
                           width=reference.width, height=reference.height, retargeted=True)
