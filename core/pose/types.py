"""A person's pose over time: body, hands and face keypoints in pixels of one canvas."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

# Body = OpenPose COCO-18 order plus the two toe points Wan-Animate draws (18 LToe, 19 RToe).
BODY_NAMES = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
    "LToe", "RToe",
)
BODY = {name: index for index, name in enumerate(BODY_NAMES)}
BODY_POINTS = len(BODY_NAMES)  # 20
COCO18_POINTS = 18
HAND_POINTS = 21  # OpenPose / MediaPipe hand order: wrist, then 4 points per finger from the thumb
FACE_POINTS = 70  # iBUG-68 order + 68 right pupil + 69 left pupil (OpenPose face-70)
LEFT, RIGHT = 0, 1  # hand slots: the person's own left and right


class PoseFormatError(ValueError):
    """Pose data of the wrong shape or layout; the message names what was expected."""


@dataclass(frozen=True, eq=False)
class PoseSequence:
    """Per-frame keypoints `(x, y, confidence)` in pixels of a `width` x `height` canvas.

    A missing point has confidence 0 (its x, y mean nothing and are never drawn). Arrays are
    float32 and read-only so a sequence can be shared between nodes without copies.
    """

    body: np.ndarray  # [N, 20, 3]
    hands: np.ndarray  # [N, 2, 21, 3]  (left, right)
    face: np.ndarray  # [N, 70, 3]
    width: int
    height: int
    fps: Optional[float] = None
    source: str = ""  # where it came from, for messages ("mediapipe", "openpose json", ...)
    video_path: Optional[str] = None  # the driving video it was extracted from, for face crops
    video_frame_step: int = 1  # pose frame i is frame i * video_frame_step of that video
    retargeted: bool = False  # moved onto another person's photo: no longer matches the video's pixels

    def __post_init__(self):
        if self.width <= 0 or self.height <= 0:
            raise PoseFormatError(f"pose canvas must be positive, got {self.width}x{self.height}")
        frames = None
        for name, tail in (("body", (BODY_POINTS, 3)), ("hands", (2, HAND_POINTS, 3)), ("face", (FACE_POINTS, 3))):
            array = np.array(getattr(self, name), dtype=np.float32)  # a private copy
            if array.ndim != 1 + len(tail) or array.shape[1:] != tail:
                raise PoseFormatError(f"pose {name} must have shape [frames, {', '.join(map(str, tail))}], "
                                      f"got {list(array.shape)}")
            if frames is not None and array.shape[0] != frames:
                raise PoseFormatError(f"pose {name} has {array.shape[0]} frames but body has {frames}")
            frames = array.shape[0]
            if not np.isfinite(array).all():
                raise PoseFormatError(f"pose {name} holds NaN or infinite values; mark missing points with "
                                      f"confidence 0 instead")
            array.setflags(write=False)
            object.__setattr__(self, name, array)
        if frames == 0:
            raise PoseFormatError("a pose sequence needs at least one frame")

    @property
    def frame_count(self) -> int:
        return self.body.shape[0]

    def replace(self, **changes) -> "PoseSequence":
        return dataclasses.replace(self, **changes)

    def frames(self, indices) -> "PoseSequence":
        """The frames at `indices` (a slice or a list), same canvas."""
        return self.replace(body=self.body[indices], hands=self.hands[indices], face=self.face[indices])


def present(points: np.ndarray, threshold: float) -> np.ndarray:
    """Mask of points whose confidence reaches `threshold` (points `[..., 3]` -> `[...]`)."""
    return points[..., 2] >= threshold
