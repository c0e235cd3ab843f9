"""Offline body, hand and face extraction with MediaPipe Holistic 0.10.14 (an optional extra).

MediaPipe 0.10.14 ships its models inside the wheel, so nothing is downloaded, but only for
model_complexity=1 (0 and 2 try to download). Holistic is used rather than FaceMesh/Hands: it
finds the face of a full-body shot from the body pose (FaceMesh's own detector misses faces
that small) and labels hands as the person's left/right (Hands assumes a mirrored selfie).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import numpy as np

from ..progress import SILENT, Progress
from .mapping import body_from_mediapipe, face_from_mediapipe, hand_from_mediapipe
from .types import BODY_POINTS, FACE_POINTS, HAND_POINTS, PoseSequence

MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.14"
NEWEST_PYTHON_WITH_WHEEL = (3, 12)
MODEL_COMPLEXITY = 1  # the only pose model inside the wheel
PROTOBUF_MAJOR, PROTOBUF_REQUIREMENT = 4, "protobuf>=4.25.3,<5"


class MediaPipeUnavailable(ImportError):
    """MediaPipe 0.10.14 cannot be used here; the message says how to get it or what to use instead."""


def _instead() -> str:
    return ("Without it, extract the pose elsewhere (e.g. DWPose in comfyui_controlnet_aux) and pass its "
            "POSE_KEYPOINT or OpenPose JSON instead.")


def _python_version() -> tuple:
    return tuple(sys.version_info[:3])


def require_mediapipe():
    """The `mediapipe` module with its legacy `solutions` API, or a MediaPipeUnavailable naming the fix."""
    python = ".".join(map(str, _python_version()))
    if _python_version()[:2] > NEWEST_PYTHON_WITH_WHEEL:
        hint = (f"MediaPipe 0.10.14 has no wheel for Python {python} (it stops at 3.12), and newer MediaPipe "
                f"releases dropped the solutions API Kinema uses. Run ComfyUI with Python 3.10-3.12 and "
                f"`pip install {MEDIAPIPE_REQUIREMENT}`.")
    else:
        hint = f"Install it into ComfyUI's Python with `pip install {MEDIAPIPE_REQUIREMENT}` (or `pip install kinema[pose]`)."
    try:
        import mediapipe
    except ImportError as error:
        raise MediaPipeUnavailable(f"pose extraction needs MediaPipe, which is not installed ({error}). "
                                   f"{hint} {_instead()}") from error
    if not hasattr(mediapipe, "solutions"):
        version = getattr(mediapipe, "__version__", "unknown")
        raise MediaPipeUnavailable(f"MediaPipe {version} is installed but has no `solutions` API (removed in "
                                   f"0.10.30). {hint} {_instead()}")
    _check_protobuf()
    return mediapipe


def _check_protobuf() -> None:
    # MediaPipe 0.10.14's graphs are parsed with protobuf 4 (it declares protobuf>=4.25.3,<5); newer
    # protobuf fails inside it with unrelated-looking parse or attribute errors, so say it plainly here.
    import google.protobuf

    version = google.protobuf.__version__
    if int(version.split(".")[0]) != PROTOBUF_MAJOR:
        raise MediaPipeUnavailable(
            f"MediaPipe 0.10.14 needs protobuf 4.x but protobuf {version} is installed. Fix: "
            f"`pip install \"{PROTOBUF_REQUIREMENT}\"`. Another package may want the newer protobuf (e.g. "
            f"sentencepiece >= 0.2.1's model file reader); if so, run pose extraction in its own environment "
            f"and load the result as OpenPose JSON. {_instead()}")


@dataclass(frozen=True)
class ExtractSettings:
    # Frames are shrunk to this long side before detection (0 = as they are); landmarks come back
    # normalized, so points are still placed on the full-size canvas.
    detect_long_side: int = 960
    frame_step: int = 1  # detect on every n-th video frame
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    refine_face: bool = True  # 478-point mesh: adds the pupils (face points 68, 69)

    def __post_init__(self):
        if self.frame_step < 1:
            raise ValueError(f"frame_step must be >= 1, got {self.frame_step}")
        if self.detect_long_side < 0:
            raise ValueError(f"detect_long_side must be >= 0 (0 = full size), got {self.detect_long_side}")


def _landmarks(landmark_list, with_visibility: bool) -> Optional[np.ndarray]:
    if landmark_list is None:
        return None
    if with_visibility:
        return np.array([(p.x, p.y, p.visibility) for p in landmark_list.landmark], np.float32)
    return np.array([(p.x, p.y) for p in landmark_list.landmark], np.float32)


def _shrink(frame: np.ndarray, long_side: int) -> np.ndarray:
    height, width = frame.shape[:2]
    if long_side == 0 or max(height, width) <= long_side:
        return frame
    import cv2  # installed with mediapipe

    scale = long_side / max(height, width)
    return cv2.resize(frame, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def _detect(frames: Iterable[np.ndarray], *, static: bool, settings: ExtractSettings, total: int,
            progress: Progress) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    """Runs Holistic over RGB uint8 frames `[H, W, 3]`; returns body, hands, face arrays and the frame size."""
    mediapipe = require_mediapipe()
    bodies, hands, faces = [], [], []
    size = None
    with mediapipe.solutions.holistic.Holistic(
        static_image_mode=static, model_complexity=MODEL_COMPLEXITY, smooth_landmarks=True,
        refine_face_landmarks=settings.refine_face,
        min_detection_confidence=settings.min_detection_confidence,
        min_tracking_confidence=settings.min_tracking_confidence,
    ) as holistic:
        for done, frame in enumerate(frames, 1):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be RGB uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}")
            height, width = frame.shape[:2]
            if size is None:
                size = (width, height)
            elif size != (width, height):
                raise ValueError(f"frame {done - 1} is {width}x{height} but the first frame is {size[0]}x{size[1]}")
            result = holistic.process(np.ascontiguousarray(_shrink(frame, settings.detect_long_side)))
            bodies.append(_body(result, width, height))
            hands.append(np.stack([_hand(result.left_hand_landmarks, width, height),
                                   _hand(result.right_hand_landmarks, width, height)]))
            faces.append(_face(result.face_landmarks, width, height))
            progress.step(done, total)
    if size is None:
        raise ValueError("no frames to extract a pose from")
    return np.stack(bodies), np.stack(hands), np.stack(faces), size


def _body(result, width: int, height: int) -> np.ndarray:
    landmarks = _landmarks(result.pose_landmarks, with_visibility=True)
    if landmarks is None:
        return np.zeros((BODY_POINTS, 3), np.float32)
    return body_from_mediapipe(landmarks, width, height)


def _hand(landmark_list, width: int, height: int) -> np.ndarray:
    landmarks = _landmarks(landmark_list, with_visibility=False)
    return np.zeros((HAND_POINTS, 3), np.float32) if landmarks is None else hand_from_mediapipe(landmarks, width, height)


def _face(landmark_list, width: int, height: int) -> np.ndarray:
    landmarks = _landmarks(landmark_list, with_visibility=False)
    return np.zeros((FACE_POINTS, 3), np.float32) if landmarks is None else face_from_mediapipe(landmarks, width, height)


def extract_images(frames: np.ndarray, *, settings: ExtractSettings = ExtractSettings(), fps: Optional[float] = None,
                   progress: Progress = SILENT) -> PoseSequence:
    """Pose of RGB uint8 frames `[N, H, W, 3]`: one photo (N = 1) or consecutive video frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"images must be [N, H, W, 3] RGB uint8, got shape {list(frames.shape)}")
    static = frames.shape[0] == 1  # a photo: no tracking between unrelated images
    body, hands, face, (width, height) = _detect(iter(frames), static=static, settings=settings,
                                                 total=frames.shape[0], progress=progress)
    return PoseSequence(body, hands, face, width, height, fps=fps, source="mediapipe")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frame_count: int  # as stored in the header (may be 0 when unknown)


def video_info(path: str | os.PathLike) -> VideoInfo:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, float(rate), stream.frames)


def iter_video_frames(path: str | os.PathLike, step: int = 1) -> Iterator[np.ndarray]:
    """Every `step`-th frame of the first video stream as RGB uint8 `[H, W, 3]`, streamed."""
    import av

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(container.streams.video[0])):
            if index % step == 0:
                yield frame.to_ndarray(format="rgb24")


def extract_video(path: str | os.PathLike, *, settings: ExtractSettings = ExtractSettings(),
                  progress: Progress = SILENT) -> PoseSequence:
    """Pose of every `settings.frame_step`-th frame of a video file, streamed (never all frames in memory)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"driving video {path} does not exist; give the path of a video file")
    require_mediapipe()  # fail before decoding anything
    info = video_info(path)
    total = -(-info.frame_count // settings.frame_step) if info.frame_count else 0
    body, hands, face, (width, height) = _detect(iter_video_frames(path, settings.frame_step), static=False,
                                                 settings=settings, total=total, progress=progress)
    return PoseSequence(body, hands, face, width, height, fps=info.fps / settings.frame_step, source="mediapipe",
                        video_path=str(path), video_frame_step=settings.frame_step)

