"""Reading and writing other tools' pose data: OpenPose JSON and ComfyUI's POSE_KEYPOINT.

OpenPose JSON: one dict per frame, `{"people": [{"pose_keypoints_2d": [x, y, c, ...], ...}]}`,
pixels, body as COCO-18 or BODY_25. POSE_KEYPOINT (comfyui_controlnet_aux, DWPose): a list of
such dicts with `canvas_width` / `canvas_height`, coordinates in pixels (DWPose) or 0..1
(OpenPose node), confidences written as 1.0 / 0.0.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .people import AUTO, Choice, Person, choose_person, sequence_of
from .types import BODY, BODY_POINTS, COCO18_POINTS, FACE_POINTS, HAND_POINTS, LEFT, RIGHT, PoseFormatError, PoseSequence

IBUG_POINTS = 68
# BODY_25 index of each COCO-18 point (BODY_25 adds MidHip at 8 and six foot points at 19-24).
BODY25_TO_COCO18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
BODY25_TOES = {"LToe": (19, 20), "RToe": (22, 23)}  # big toe, small toe: the toe point is their middle
BODY25_POINTS = 25
ANY_COUNT = range(1, 1 << 16)
PART_KEYS = {"body": "pose_keypoints_2d", "face": "face_keypoints_2d",
             "left": "hand_left_keypoints_2d", "right": "hand_right_keypoints_2d"}


def _triplets(values, what: str, allowed: Sequence[int]) -> Optional[np.ndarray]:
    """Flat `[x, y, c] * K` (or nested triplets) -> `[K, 3]`, None when absent."""
    if values is None or len(values) == 0:
        return None
    if any(item is None or isinstance(item, (list, tuple)) for item in values):  # nested, None = missing point
        values = [v for item in values for v in (item if item is not None else (0, 0, 0))]
    try:
        array = np.asarray(values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError) as error:
        raise PoseFormatError(f"{what} must hold numbers (x, y, confidence triplets): {error}") from error
    if array.size % 3 or array.size // 3 not in allowed:
        counts = " or ".join(str(k) for k in allowed) if len(allowed) < 5 else "whole"
        raise PoseFormatError(f"{what} must be {counts} (x, y, confidence) triplets, got {array.size} numbers")
    points = array.reshape(-1, 3)
    # OpenPose marks a missing point 0,0,0; some writers keep a confidence on it. Never keep a point at the origin.
    points[(points[:, 2] <= 0) | ((points[:, 0] == 0) & (points[:, 1] == 0))] = 0.0
    return points


def _body_points(values, what: str) -> np.ndarray:
    body = np.zeros((BODY_POINTS, 3), np.float32)
    points = _triplets(values, what, (COCO18_POINTS, BODY25_POINTS))
    if points is None:
        return body
    if len(points) == COCO18_POINTS:
        body[:COCO18_POINTS] = points
        return body
    body[:COCO18_POINTS] = points[list(BODY25_TO_COCO18)]
    for name, (big, small) in BODY25_TOES.items():
        toes = points[[big, small]]
        seen = toes[toes[:, 2] > 0]
        if len(seen):
            body[BODY[name]] = (*seen[:, :2].mean(axis=0), seen[:, 2].min())
    return body


def _face_points(values, what: str) -> np.ndarray:
    face = np.zeros((FACE_POINTS, 3), np.float32)
    points = _triplets(values, what, (IBUG_POINTS, FACE_POINTS))
    if points is not None:
        face[:len(points)] = points
    return face


def _hand_points(values, what: str) -> np.ndarray:
    points = _triplets(values, what, (HAND_POINTS,))
    return np.zeros((HAND_POINTS, 3), np.float32) if points is None else points


def _people(people: list, where: str, scale: np.ndarray) -> list:
    """Every person of one frame as a Person (pixels)."""
    if not isinstance(people, list):
        raise PoseFormatError(f"{where}: 'people' must be a list of person dicts, got {type(people).__name__}")
    out = []
    for person in people:
        if not isinstance(person, dict):
            raise PoseFormatError(f"{where}: each person must be a dict of keypoint lists, got {type(person).__name__}")
        body = _body_points(person.get(PART_KEYS["body"]), f"{where} pose_keypoints_2d")
        face = _face_points(person.get(PART_KEYS["face"]), f"{where} face_keypoints_2d")
        hands = np.stack([_hand_points(person.get(PART_KEYS["left"]), f"{where} hand_left_keypoints_2d"),
                          _hand_points(person.get(PART_KEYS["right"]), f"{where} hand_right_keypoints_2d")])
        out.append(Person(body * scale, hands * scale, face * scale))
    return out


def _read_frames(frames: list, width: int, height: int, normalized: bool, source: str, fps,
                 person=AUTO) -> tuple[PoseSequence, Choice]:
    """The chosen person (people.py: the main one by default, tracked across frames) of every frame."""
    scale = np.array([width, height, 1.0], np.float32) if normalized else np.ones(3, np.float32)
    everyone = []
    for index, frame in enumerate(frames):
        where = f"{source} frame {index}"
        if not isinstance(frame, dict) or "people" not in frame:
            raise PoseFormatError(f"{where} must be a dict with a 'people' list (OpenPose layout), "
                                  f"got {type(frame).__name__}")
        everyone.append(_people(frame["people"], where, scale))
    picked, choice = choose_person(everyone, width, height, fps, person)
    return sequence_of(picked, width, height, fps=fps, source=source), choice


def _looks_normalized(frames: list) -> bool:
    """True when every present coordinate of every frame lies in 0..1 (the OpenPose node's convention)."""
    largest = 0.0
    for frame in frames:
        for person in frame.get("people") or []:
            for key in PART_KEYS.values():
                points = _triplets(person.get(key), key, ANY_COUNT)
                if points is not None and (points[:, 2] > 0).any():
                    largest = max(largest, float(np.abs(points[points[:, 2] > 0, :2]).max()))
    return largest <= 1.0


def from_pose_keypoint(value: list, normalized: Optional[bool] = None, fps: Optional[float] = None,
                       person=AUTO) -> PoseSequence:
    """ComfyUI POSE_KEYPOINT (list of per-frame dicts) -> PoseSequence in pixels of its canvas."""
    return read_pose_keypoint(value, normalized, fps, person)[0]


def read_pose_keypoint(value: list, normalized: Optional[bool] = None, fps: Optional[float] = None,
                       person=AUTO) -> tuple[PoseSequence, Choice]:
    """ComfyUI POSE_KEYPOINT (list of per-frame dicts) -> the chosen person in pixels of its canvas, and the choice.

    `normalized`: None detects it (all coordinates within 0..1 = normalized); say it explicitly when a
    pose could be read either way (e.g. a single point at the origin).
    """
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        raise PoseFormatError("POSE_KEYPOINT must be a non-empty list of per-frame dicts with 'people', "
                              "'canvas_width' and 'canvas_height'")
    sizes = {(frame.get("canvas_width"), frame.get("canvas_height")) for frame in value if isinstance(frame, dict)}
    if len(sizes) != 1 or None in next(iter(sizes)):
        raise PoseFormatError(f"POSE_KEYPOINT frames must all carry the same canvas_width and canvas_height, "
                              f"found {sorted(sizes, key=str)}")
    width, height = (int(v) for v in next(iter(sizes)))
    if normalized is None:
        normalized = _looks_normalized(value)
    return _read_frames(value, width, height, normalized, "pose_keypoint", fps, person)


def from_openpose_json(source, width: Optional[int] = None, height: Optional[int] = None,
                       fps: Optional[float] = None, person=AUTO) -> PoseSequence:
    """OpenPose output -> PoseSequence: a dict, a list of dicts, a .json file or a folder of per-frame .json files."""
    return read_openpose_json(source, width, height, fps, person)[0]


def read_openpose_json(source, width: Optional[int] = None, height: Optional[int] = None,
                       fps: Optional[float] = None, person=AUTO) -> tuple[PoseSequence, Choice]:
    """OpenPose output -> the chosen person as a PoseSequence, and the choice (see `from_openpose_json`).

    OpenPose JSON holds no picture size, so `width` and `height` are needed unless the frames carry
    `canvas_width` / `canvas_height`.
    """
    frames, name = _load_json_frames(source)
    if width is None or height is None:
        sizes = {(frame.get("canvas_width"), frame.get("canvas_height")) for frame in frames}
        if len(sizes) != 1 or None in next(iter(sizes)):
            raise PoseFormatError(f"{name}: OpenPose JSON does not say the picture size; pass width and height "
                                  f"(the driving video's frame size in pixels)")
        width, height = (int(v) for v in next(iter(sizes)))
    return _read_frames(frames, width, height, False, name, fps, person)


def _load_json_frames(source) -> tuple[list, str]:
    if isinstance(source, dict):
        return [source], "openpose json"
    if isinstance(source, list):
        return source, "openpose json"
    path = Path(os.fspath(source))
    if path.is_dir():
        files = sorted(path.glob("*.json"))
        if not files:
            raise PoseFormatError(f"{path}: the folder holds no .json files; expected one OpenPose JSON per frame")
        return [json.loads(file.read_text()) for file in files], str(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such OpenPose JSON file or folder")
    loaded = json.loads(path.read_text())
    return (loaded if isinstance(loaded, list) else [loaded]), str(path)


def _flat(points: np.ndarray, threshold: float, binary: bool, scale: np.ndarray) -> list:
    """`[K, 3]` -> `[x, y, c] * K` with missing points as 0, 0, 0."""
    out = points.astype(np.float64) * scale
    seen = points[:, 2] >= threshold
    out[~seen] = 0.0
    if binary:
        out[seen, 2] = 1.0
    return [round(float(v), 6) for v in out.reshape(-1)]  # 6 decimals: sub-pixel even when normalized


def _person(pose: PoseSequence, index: int, threshold: float, binary: bool, scale: np.ndarray) -> dict:
    hands = pose.hands[index]
    return {
        PART_KEYS["body"]: _flat(pose.body[index, :COCO18_POINTS], threshold, binary, scale),
        PART_KEYS["face"]: _flat(pose.face[index], threshold, binary, scale),
        PART_KEYS["left"]: _flat(hands[LEFT], threshold, binary, scale),
        PART_KEYS["right"]: _flat(hands[RIGHT], threshold, binary, scale),
    }


def to_pose_keypoint(pose: PoseSequence, normalized: bool = False, threshold: float = 0.3) -> list:
    """PoseSequence -> ComfyUI POSE_KEYPOINT: COCO-18 body (toes dropped), confidences as 1.0 / 0.0.

    Consumers such as comfyui_controlnet_aux's renderers drop every point whose confidence is not
    exactly 1.0, so points at or above `threshold` are written as 1.0 and the rest as missing.
    """
    scale = np.array([1 / pose.width, 1 / pose.height, 1.0]) if normalized else np.ones(3)
    return [{"people": [_person(pose, i, threshold, True, scale)],
             "canvas_width": pose.width, "canvas_height": pose.height} for i in range(pose.frame_count)]


def to_openpose_json(pose: PoseSequence) -> list:
    """PoseSequence -> one OpenPose JSON dict per frame (pixels, COCO-18 body, real confidences).

    Each frame also carries `canvas_width` / `canvas_height` (as POSE_KEYPOINT does), so the file
    reads back without being told the picture size.
    """
    return [{"version": 1.3, "people": [{"person_id": [-1], **_person(pose, i, 1e-6, False, np.ones(3))}],
             "canvas_width": pose.width, "canvas_height": pose.height} for i in range(pose.frame_count)]


def save_openpose_json(pose: PoseSequence, path) -> None:
    """Writes `to_openpose_json(pose)` as one JSON file at `path`, which must not exist yet.

    The text goes to a temporary file beside it that is then linked to `path`: a reader never sees
    half a file, and a file that appeared meanwhile is never replaced.
    """
    path = Path(os.fspath(path))
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(to_openpose_json(pose), file)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; an export is for reading
        taken = FileExistsError(f"{path} already exists; the pose JSON is never written over a file")
        try:
            os.link(temporary, path)  # atomic, and fails when `path` exists
        except FileExistsError:
            raise taken from None
        except OSError:  # a file system without hard links
            if path.exists():
                raise taken from None
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
