"""Choosing and following one person when a video shows several.

Detections are linked frame to frame into tracks (box overlap, else a short hop of the box centre,
across gaps of up to a second). The main person is the track with the most prominence over the
clip: its size, weighted towards the picture's centre, summed over the frames it appears in. A
later track of similar size that never appears at the same time as the chosen ones is the same
person coming back (after leaving the frame, or after the detector lost them) and is added.
Users can instead pick a track by rank: 0 is the main person, 1 the next most prominent, ...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .types import BODY_POINTS, FACE_POINTS, HAND_POINTS, PoseSequence

LINK_IOU = 0.2  # boxes overlapping at least this much are the same person in consecutive detections
LINK_HOP = 0.6  # ... or centres closer than this many box heights
MAX_GAP_SECONDS = 1.0
SIZE_MATCH = (0.5, 2.0)  # a returning person's box height over the chosen track's
AUTO = "auto"


@dataclass(frozen=True)
class Person:
    """One detection in one frame (pixels): body `[20, 3]`, hands `[2, 21, 3]`, face `[70, 3]`."""

    body: np.ndarray
    hands: np.ndarray
    face: np.ndarray

    @staticmethod
    def empty() -> "Person":
        return Person(np.zeros((BODY_POINTS, 3), np.float32), np.zeros((2, HAND_POINTS, 3), np.float32),
                      np.zeros((FACE_POINTS, 3), np.float32))

    def box(self) -> Optional[np.ndarray]:
        """(x0, y0, x1, y1) of every visible point (at least 1 pixel wide and tall), or None without any."""
        points = np.concatenate([self.body, self.hands.reshape(-1, 3), self.face])
        points = points[points[:, 2] > 0, :2]
        if len(points) == 0:
            return None
        low, high = points.min(axis=0), points.max(axis=0)
        return np.concatenate([low, np.maximum(high, low + 1.0)])


@dataclass(frozen=True)
class Choice:
    """Which person was followed, for the node's message."""

    people_seen: int  # distinct people: tracks found in the clip, a person coming back counted once
    chosen_rank: int  # rank of the first chosen track (0 = most prominent)
    frames_with_person: int
    frames_with_others: int  # frames where someone else was in view too
    returns: int = 0  # times the chosen person came back into view after being out of it


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    area = lambda box: max(box[2] - box[0], 1e-6) * max(box[3] - box[1], 1e-6)  # noqa: E731
    return float(inter / (area(a) + area(b) - inter))


def _hop(a: np.ndarray, b: np.ndarray) -> float:
    """Distance of the box centres in box heights."""
    centre = lambda box: np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])  # noqa: E731
    height = max(a[3] - a[1], b[3] - b[1], 1e-6)
    return float(np.linalg.norm(centre(a) - centre(b)) / height)


def _joint_hop(a: Person, b: Person, a_box: np.ndarray, b_box: np.ndarray) -> float:
    """Median distance of the body joints both show, in box heights (inf with none in common): a person
    half leaving the picture keeps the joints still in view where they were, though the box jumps."""
    common = (a.body[:, 2] > 0) & (b.body[:, 2] > 0)
    if not common.any():
        return float("inf")
    height = max(a_box[3] - a_box[1], b_box[3] - b_box[1], 1e-6)
    return float(np.median(np.linalg.norm(a.body[common, :2] - b.body[common, :2], axis=-1)) / height)


def _tracks(frames: Sequence[Sequence[Person]], boxes: list, max_gap: int) -> list:
    """Tracks as lists of (frame, detection index), linking greedily by overlap then by hop."""
    tracks, last = [], []  # last: (frame, box, person) of each track's newest detection
    for frame, frame_boxes in enumerate(boxes):
        pairs = []
        for d, box in enumerate(frame_boxes):
            if box is None:
                continue
            for k, (seen, previous, person) in enumerate(last):
                if frame - seen > max_gap:
                    continue
                iou = _iou(box, previous)
                hop = min(_hop(box, previous), _joint_hop(frames[frame][d], person, box, previous))
                if iou >= LINK_IOU or hop <= LINK_HOP:
                    pairs.append((-iou, hop, k, d))
        used_tracks, used_detections = set(), set()
        for _, _, k, d in sorted(pairs):
            if k in used_tracks or d in used_detections:
                continue
            used_tracks.add(k), used_detections.add(d)
            tracks[k].append((frame, d))
            last[k] = (frame, frame_boxes[d], frames[frame][d])
        for d, box in enumerate(frame_boxes):
            if box is not None and d not in used_detections:
                tracks.append([(frame, d)])
                last.append((frame, box, frames[frame][d]))
    return tracks


def _prominence(track: list, boxes: list, width: int, height: int) -> float:
    total = 0.0
    for frame, d in track:
        x0, y0, x1, y1 = boxes[frame][d]
        size = np.sqrt(max(x1 - x0, 1.0) * max(y1 - y0, 1.0)) / np.hypot(width, height)
        off_centre = np.hypot((x0 + x1) / 2 / width - 0.5, (y0 + y1) / 2 / height - 0.5) / np.hypot(0.5, 0.5)
        total += size * (1.0 - 0.5 * off_centre)
    return total


def choose_person(frames: Sequence[Sequence[Person]], width: int, height: int, fps: Optional[float] = None,
                  person=AUTO) -> tuple[list, Choice]:
    """One Person per frame (Person.empty() where the chosen person is not seen), and what was chosen.

    `person`: "auto" (the main person) or a rank, an int or its text ("0" = main, "1" = next, ...).
    """
    rank = _rank(person)
    boxes = [[p.box() for p in people] for people in frames]
    max_gap = max(1, round(MAX_GAP_SECONDS * (fps or 30.0)))
    tracks = _tracks(frames, boxes, max_gap)
    tracks.sort(key=lambda track: -_prominence(track, boxes, width, height))
    if tracks and rank >= len(tracks):
        raise ValueError(f"person {rank} was asked for but only {len(tracks)} people were found in the clip "
                         f"(0 = the most prominent); use 'auto' or a smaller number")
    chosen = [tracks[rank]] if tracks else []
    if tracks:
        busy = {frame for frame, _ in chosen[0]}
        height_of = lambda track: np.median([boxes[f][d][3] - boxes[f][d][1] for f, d in track])  # noqa: E731
        reference = height_of(chosen[0])
        for track in tracks:
            if track is chosen[0] or any(frame in busy for frame, _ in track):
                continue
            if SIZE_MATCH[0] <= height_of(track) / max(reference, 1e-6) <= SIZE_MATCH[1]:
                chosen.append(track)
                busy.update(frame for frame, _ in track)
    picked = [Person.empty() for _ in frames]
    for track in chosen:
        for frame, d in track:
            picked[frame] = frames[frame][d]
    with_person = sum(1 for p in picked if p.box() is not None)
    others = sum(1 for people, p in zip(frames, picked)
                 if sum(1 for q in people if q.box() is not None and q is not p) > 0)
    present = np.array([p.box() is not None for p in picked])
    inside = np.flatnonzero(present)
    # absences of 3 frames or more between two appearances (a detector flickering for a frame is not leaving)
    returns = 0 if len(inside) == 0 else int((np.diff(inside) > 3).sum())
    return picked, Choice(len(tracks) - (len(chosen) - 1), rank, with_person, others, returns)


def _rank(person) -> int:
    if isinstance(person, str):
        text = person.strip().lower()
        if text in ("", AUTO):
            return 0
        if not text.isdigit():
            raise ValueError(f"person must be 'auto' or a number (0 = the main person, 1 = the next, ...), "
                             f"got {person!r}")
        return int(text)
    if isinstance(person, (int, np.integer)) and person >= 0:
        return int(person)
    raise ValueError(f"person must be 'auto' or a number >= 0, got {person!r}")


def sequence_of(picked: Sequence[Person], width: int, height: int, **fields) -> PoseSequence:
    """The chosen person's frames as a PoseSequence."""
    return PoseSequence(np.stack([p.body for p in picked]), np.stack([p.hands for p in picked]),
                        np.stack([p.face for p in picked]), width, height, **fields)


def describe_choice(choice: Choice, frames: int) -> str:
    parts = []
    if choice.people_seen > 1:
        which = "the main person" if choice.chosen_rank == 0 else f"person {choice.chosen_rank}"
        parts.append(f"{choice.people_seen} people tracked, following {which} (in {choice.frames_with_person} of "
                     f"{frames} frames; others in view in {choice.frames_with_others})")
    if choice.returns:
        parts.append(f"the person left the picture and came back {choice.returns} time"
                     f"{'s' if choice.returns > 1 else ''} (in view in {choice.frames_with_person} of {frames} frames)")
    return "; ".join(parts)


def follow(pose: PoseSequence, person=AUTO) -> tuple[PoseSequence, Choice]:
    """A one-detection-per-frame pose (MediaPipe) with detections of anyone but the chosen person removed:
    a detector that jumps to someone else for a few frames does not move the driver there."""
    frames = [[Person(pose.body[t], pose.hands[t], pose.face[t])] for t in range(pose.frame_count)]
    picked, choice = choose_person(frames, pose.width, pose.height, pose.fps, person)
    chosen = sequence_of(picked, pose.width, pose.height)
    return pose.replace(body=chosen.body, hands=chosen.hands, face=chosen.face), choice
