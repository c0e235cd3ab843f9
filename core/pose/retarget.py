"""Retargeting a driving pose onto the person of a reference photo.

Each bone keeps its direction from the driving frame and takes the photo's length, times the
bone's foreshortening in that frame (its visible length over its own typical length at the current
camera zoom). The zoom is estimated per frame from every visible bone and smoothed (zoom.py), so a
camera push-in changes nothing in the output, and a bone never grows past 1.2x the photo's (one
detected longer than 1.6x is a detection error and is left out).

Placement anchors on what is visible. The skeleton is split into the pieces the visible bones
connect, and each piece is pinned by its most central visible joint (neck, then nose, shoulders,
hips, eyes, ...) onto the same joint of the photo, so a close-up's face, neck and shoulders land on
the photo's own. Full-body footage on a full-body photo can pin the ground under the feet instead.
On top of the pinning, `motion` decides how the driving person's movement shows: "sway" keeps the
quick movement around the slow path (camera pans, zooms and slow drift are dropped), "follow" keeps
the whole path from the first frame, scaled to the photo. Hands follow their wrist, scaled by the
forearm's ratio; face points follow the nose (or, without one, the photo's face), scaled to the
photo's face size. Points ending more than 10 % outside the canvas are left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import BODY, BODY_NAMES, LEFT, RIGHT, PoseSequence
from .zoom import estimate_zoom, high_pass

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
NOSE_TIP = 30  # iBUG index: where the face is pinned when the body's nose is not seen
GROUND_POINTS = (BODY["RAnkle"], BODY["LAnkle"], BODY["RToe"], BODY["LToe"])
HIPS = (BODY["RHip"], BODY["LHip"])
ANCHORS = ("auto", "neck", "feet")
MOTIONS = ("sway", "follow")
# Joints that may pin a piece of skeleton onto the photo, the most central first. Limb joints never
# do: where a hand is relative to the body is the motion itself, so a forearm cut off from its
# shoulder is left out rather than drawn at the photo's wrist.
ANCHOR_ORDER = tuple(BODY[name] for name in (
    "Neck", "Nose", "RShoulder", "LShoulder", "RHip", "LHip", "REye", "LEye", "REar", "LEar"))
STRETCH_CAP = 1.2  # a bone is drawn at most this many times the photo's length
STRETCH_REJECT = 1.6  # a bone seen longer than this (relative to its typical length) is a detection error
CANVAS_MARGIN = 0.1  # points further outside the canvas than this fraction of its size are left out
SWAY_SECONDS = 1.0  # the slow path that "sway" removes: a local-linear fit over this time
FACE_COMPLETE = 0.9  # fraction of the 68 face points that must be visible to measure the face's size


class RetargetError(ValueError):
    """The reference or driving pose lacks what retargeting needs; the message says what to change."""


@dataclass(frozen=True)
class RetargetSettings:
    anchor: str = "auto"  # "neck" (visible joints), "feet" (ground line + hip centre) or "auto" = feet when both show feet
    symmetric: bool = True  # left and right bones take the longer of the pair (foreshortening only shortens)
    # Drop joints the photo does not show on either side (the legs of a half-body photo): the character
    # has no visible legs to move, and a skeleton drawn there would make the model invent them.
    reference_joints_only: bool = True
    threshold: float = 0.3  # points below this confidence are treated as missing
    motion: str = "sway"  # "sway": quick movement around the slow path; "follow": the whole path

    def __post_init__(self):
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {self.anchor!r}; choose one of {', '.join(ANCHORS)}")
        if self.motion not in MOTIONS:
            raise ValueError(f"unknown motion {self.motion!r}; choose one of {', '.join(MOTIONS)}")


@dataclass(frozen=True)
class Calibration:
    ratios: dict  # bone -> photo length / the driving bone's typical length at zoom 1
    scale: float  # overall size ratio at zoom 1: median of the bone ratios
    zoom: np.ndarray  # [N] the driving camera's smoothed zoom (median 1)
    photo_lengths: dict  # bone -> photo length (pixels of the photo)
    typical: dict  # bone -> driving typical length at zoom 1 (pixels of the driving canvas)
    anchor: str  # "neck" or "feet"
    frame: int  # the first driving frame with a joint to pin
    joints: np.ndarray  # [20] bool: body joints that may appear in the output
    photo_face: float | None  # size of the photo's face (sqrt of its box area), None when not found
    driving_face: float | None  # typical driving face size at zoom 1


def _length(points: np.ndarray, bone) -> float:
    return float(np.linalg.norm(points[bone[1], :2] - points[bone[0], :2]))


def face_size(face: np.ndarray, complete: float = FACE_COMPLETE) -> float | None:
    """sqrt(width * height) of the 68 face points' box `[70, 3]`, or None with too few points visible."""
    points = face[:IBUG_POINTS]
    points = points[points[:, 2] > 0, :2]
    if len(points) < max(2, complete * IBUG_POINTS):
        return None
    w, h = points.max(axis=0) - points.min(axis=0)
    return float(np.sqrt(max(w, 1e-6) * max(h, 1e-6)))


def _driving_lengths(driving: PoseSequence, threshold: float) -> np.ndarray:
    """Visible lengths `[N, bones + 1]` (NaN where not visible); the last column is the face size."""
    body = driving.body
    seen = body[..., 2] >= threshold  # [N, 20]
    columns = []
    for parent, child in BONES:
        length = np.linalg.norm(body[:, child, :2] - body[:, parent, :2], axis=-1)
        columns.append(np.where(seen[:, parent] & seen[:, child], length, np.nan))
    faces = [face_size(face) for face in driving.face]
    columns.append(np.array([np.nan if size is None else size for size in faces]))
    return np.stack(columns, axis=1)


def drop_implausible(driving: PoseSequence, threshold: float) -> tuple[PoseSequence, int]:
    """The pose with every joint at the end of a bone seen far longer than that bone's typical length (at
    the frame's zoom) set missing, with what hangs from it: detectors that lose a small or half-hidden
    person draw such limbs across the picture. Returns the pose and the number of bones dropped."""
    lengths = _driving_lengths(driving, threshold)  # [N, B + 1]
    zoom, typical = estimate_zoom(lengths, driving.fps or 30.0)
    with np.errstate(invalid="ignore"):
        stretched = lengths[:, :-1] / (zoom[:, None] * typical[None, :-1]) > STRETCH_REJECT  # [N, B]
    if not stretched.any():
        return driving, 0
    body, hands = driving.body.copy(), driving.hands.copy()
    for t, b in zip(*np.nonzero(stretched)):
        dropped = {BONES[b][1]}
        for parent, child in BONES:  # parents come first, so one pass reaches the whole chain
            if parent in dropped:
                dropped.add(child)
        body[t, sorted(dropped)] = 0.0
        for side, bone in FOREARM.items():
            if bone[1] in dropped:
                hands[t, side] = 0.0
    return driving.replace(body=body, hands=hands), int(stretched.sum())


def _symmetrise(values: dict) -> dict:
    out = dict(values)
    for right, left in MIRROR.items():
        known = [values[bone] for bone in (right, left) if bone in values]
        if known:
            out[right] = out[left] = max(known)
    return out


def _allowed_joints(reference: np.ndarray, settings: RetargetSettings) -> np.ndarray:
    seen = reference[:, 2] >= settings.threshold  # [20]
    if not settings.reference_joints_only:
        return np.ones_like(seen)
    return seen | np.array([seen[MIRROR_JOINT.get(j, j)] for j in range(len(seen))])


def _feet_seen(body: np.ndarray, threshold: float) -> np.ndarray:
    return (body[..., GROUND_POINTS, 2] >= threshold).any(axis=-1)


def calibrate(driving: PoseSequence, reference: PoseSequence, settings: RetargetSettings = RetargetSettings()) -> Calibration:
    """Zoom, bone ratios and anchor mode from the photo (frame 0 of `reference`) and the whole driver."""
    ref = reference.body[0]
    threshold = settings.threshold
    lengths = _driving_lengths(driving, threshold)  # [N, B + 1]
    zoom, typical_all = estimate_zoom(lengths, driving.fps or 30.0)
    typical = {bone: float(typical_all[i]) for i, bone in enumerate(BONES) if np.isfinite(typical_all[i])}
    photo = {bone: _length(ref, bone) for bone in BONES if ref[bone[0], 2] >= threshold and ref[bone[1], 2] >= threshold}
    if settings.symmetric:
        typical, photo = _symmetrise(typical), _symmetrise(photo)
    ratios = {bone: photo[bone] / typical[bone] for bone in BONES if bone in photo and typical.get(bone, 0) > 1e-6}
    if not ratios:
        raise RetargetError("the reference photo and the driving video share no bone with both ends found; "
                            "the photo should show the person's upper body (shoulders, arms, head) clearly")
    if ref[ROOT, 2] < threshold:
        raise RetargetError("the reference photo shows no neck (both shoulders are needed); use a photo where "
                            "the person's shoulders are visible")
    scale = float(np.median(list(ratios.values())))
    if not settings.reference_joints_only:  # bones the photo lacks: the driver's, at the overall scale
        for bone, length in typical.items():
            photo.setdefault(bone, length * scale)
            ratios.setdefault(bone, scale)
    anchored = np.flatnonzero((driving.body[..., 2] >= threshold).any(axis=1))
    if len(anchored) == 0:
        raise RetargetError("no driving frame shows any body joint; the driving video needs the person in view")
    anchor = settings.anchor
    photo_feet = bool(_feet_seen(ref, threshold))
    if anchor == "auto":
        anchor = "feet" if photo_feet and _feet_seen(driving.body, threshold).mean() >= 0.5 else "neck"
    elif anchor == "feet" and (not photo_feet or not _feet_seen(driving.body, threshold).any()):
        raise RetargetError("anchor 'feet' needs ankles or toes in both the reference photo and the driving video; "
                            "use anchor 'neck' (or 'auto') for half-body shots")
    driving_face = float(typical_all[-1]) if np.isfinite(typical_all[-1]) else None
    return Calibration(ratios, scale, zoom, photo, typical, anchor, int(anchored[0]),
                       _allowed_joints(ref, settings), face_size(reference.face[0]), driving_face)


def _ground(body: np.ndarray, threshold: float) -> np.ndarray | None:
    """The ground point `[2]`: hip centre (else neck) x, lowest visible foot y; None without feet or centre."""
    feet = [i for i in GROUND_POINTS if body[i, 2] >= threshold]
    centre = [i for i in HIPS if body[i, 2] >= threshold]
    centre = centre if len(centre) == 2 else [ROOT] if body[ROOT, 2] >= threshold else []
    if not feet or not centre:
        return None
    return np.array([body[centre, 0].mean(), body[feet, 1].max()])


@dataclass(frozen=True)
class RetargetReport:
    """What retargeting did, per frame, for the node's message and the checks."""

    frames: int
    anchors: np.ndarray  # [N, 20] bool: joints a piece was pinned by in each frame
    ground: np.ndarray  # [N] bool: frames pinned by the ground under the feet
    face_pinned: np.ndarray  # [N] bool: the face was pinned on the photo's face (no nose seen)
    dropped_stretched: int  # bones left out as detection errors (longer than STRETCH_REJECT)
    clipped_points: int  # points left out for lying more than 10 % outside the canvas
    zoom_range: tuple[float, float]
    anchor: str
    motion: str
    left_out: tuple = ()  # names of joints the video shows but the photo does not (never drawn)


class _Motion:
    """Offsets `[2]` (photo pixels) added to a pinned joint: the driving joint's movement, scaled."""

    def __init__(self, tracks: dict, settings: RetargetSettings, fps: float, threshold: float, scale: np.ndarray):
        self.scale = scale  # [N] photo pixels per driving pixel
        self.offsets = {}
        for key, (track, seen) in tracks.items():  # track [N, 2], seen [N]
            if settings.motion == "sway":
                self.offsets[key] = high_pass(track, seen, fps, SWAY_SECONDS)
            else:
                first = track[int(np.argmax(seen))] if seen.any() else np.zeros(2)
                self.offsets[key] = np.where(seen[:, None], track - first, 0.0)

    def __call__(self, key, frame: int) -> np.ndarray:
        return self.offsets[key][frame] * self.scale[frame]


def _pieces(source: np.ndarray, usable: dict, joints: np.ndarray, photo_seen: np.ndarray,
            threshold: float) -> list:
    """Connected pieces of the visible skeleton, each as (pin joint, {joint: position relative to the pin}).

    The pin is the piece's most central joint (ANCHOR_ORDER) that the photo shows; a piece with no
    such joint cannot be placed and is left out.
    """
    neighbours = {j: [] for j in range(len(source))}
    for (parent, child), length in usable.items():
        neighbours[parent].append((child, length))
        neighbours[child].append((parent, length))
    placed, pieces = set(), []
    for start in range(len(source)):
        if start in placed or source[start, 2] < threshold or not joints[start]:
            continue
        relative, queue = {start: np.zeros(2)}, [start]
        while queue:
            joint = queue.pop()
            for other, length in neighbours[joint]:
                if other in relative or not joints[other]:
                    continue
                direction = source[other, :2] - source[joint, :2]
                norm = float(np.linalg.norm(direction))
                relative[other] = relative[joint] + (direction / norm * length if norm > 1e-9 else 0.0)
                queue.append(other)
        placed.update(relative)
        pin = next((j for j in ANCHOR_ORDER if j in relative and photo_seen[j]), None)
        if pin is not None:
            pieces.append((pin, {joint: offset - relative[pin] for joint, offset in relative.items()}))
    return pieces


def _bones_in_frame(source: np.ndarray, calibration: Calibration, zoom: float, threshold: float) -> tuple[dict, int]:
    """Bone -> output length for the bones visible in this driving frame, and how many were rejected."""
    usable, rejected = {}, 0
    for bone in BONES:
        parent, child = bone
        if source[parent, 2] < threshold or source[child, 2] < threshold or bone not in calibration.photo_lengths:
            continue
        typical = calibration.typical.get(bone)
        seen = _length(source, bone)
        stretch = seen / (zoom * typical) if typical else 1.0
        if stretch > STRETCH_REJECT:
            rejected += 1
            continue
        usable[bone] = calibration.photo_lengths[bone] * min(stretch, STRETCH_CAP)
    return usable, rejected


def _follow(points: np.ndarray, driving_anchor: np.ndarray, placed_anchor: np.ndarray, ratio: float) -> np.ndarray:
    """Moves points `[K, 3]` with their anchor `[2]` and scales them about it; missing points stay missing."""
    out = points.copy()
    out[:, :2] = placed_anchor + (points[:, :2] - driving_anchor) * ratio
    out[points[:, 2] <= 0] = 0.0
    return out


def _clip(points: np.ndarray, width: int, height: int) -> tuple[np.ndarray, int]:
    """Points `[..., 3]` more than CANVAS_MARGIN outside the canvas set missing; returns them and the count."""
    x, y = points[..., 0], points[..., 1]
    outside = ((x < -CANVAS_MARGIN * width) | (x > (1 + CANVAS_MARGIN) * width) |
               (y < -CANVAS_MARGIN * height) | (y > (1 + CANVAS_MARGIN) * height)) & (points[..., 2] > 0)
    out = points.copy()
    out[outside] = 0.0
    return out, int(outside.sum())


def retarget_with_report(driving: PoseSequence, reference: PoseSequence,
                         settings: RetargetSettings = RetargetSettings()) -> tuple[PoseSequence, RetargetReport]:
    """The driving motion with the reference photo's proportions, on the photo's canvas, and what was done."""
    calibration = calibrate(driving, reference, settings)
    threshold = settings.threshold
    ref_body, ref_face = reference.body[0], reference.face[0]
    frames, fps = driving.frame_count, driving.fps or 30.0
    scale = calibration.scale / calibration.zoom  # [N] photo pixels per driving pixel
    body_seen = driving.body[..., 2] >= threshold  # [N, 20]
    tracks = {j: (driving.body[:, j, :2], body_seen[:, j]) for j in range(driving.body.shape[1])}
    grounds = [_ground(b, threshold) for b in driving.body]
    tracks["ground"] = (np.stack([g if g is not None else np.zeros(2) for g in grounds]),
                        np.array([g is not None for g in grounds]))
    tracks["face"] = (driving.face[:, NOSE_TIP, :2], driving.face[:, NOSE_TIP, 2] > 0)
    motion = _Motion(tracks, settings, fps, threshold, scale)
    photo_ground = _ground(ref_body, threshold)
    photo_seen = ref_body[:, 2] >= threshold  # [20]
    photo_face_anchor = (ref_face[NOSE_TIP, :2] if ref_face[NOSE_TIP, 2] > 0 else
                         ref_body[BODY["Nose"], :2] if ref_body[BODY["Nose"], 2] >= threshold else None)

    bodies = np.zeros_like(driving.body)
    hands = np.zeros_like(driving.hands)
    faces = np.zeros_like(driving.face)
    anchors = np.zeros(driving.body.shape[:2], bool)
    grounded = np.zeros(frames, bool)
    face_pinned = np.zeros(frames, bool)
    rejected = 0
    for t in range(frames):
        source = driving.body[t]
        usable, dropped = _bones_in_frame(source, calibration, float(calibration.zoom[t]), threshold)
        rejected += dropped
        for pin, relative in _pieces(source, usable, calibration.joints, photo_seen, threshold):
            ground = None
            if calibration.anchor == "feet" and photo_ground is not None and grounds[t] is not None:
                ground = _ground(_as_body(relative, source), threshold)
            if ground is not None:
                origin = photo_ground - ground + motion("ground", t)
                grounded[t] = True
            else:
                origin = ref_body[pin, :2] + motion(pin, t)
            anchors[t, pin] = ground is None
            for joint, offset in relative.items():
                bodies[t, joint] = (*(origin + offset), source[joint, 2])
        placed = bodies[t]
        for side, bone in FOREARM.items():
            wrist = bone[1]
            if placed[wrist, 2] >= threshold and source[wrist, 2] >= threshold:
                ratio = calibration.ratios.get(bone, calibration.scale) / calibration.zoom[t]
                hands[t, side] = _follow(driving.hands[t, side], source[wrist, :2], placed[wrist, :2], ratio)
        faces[t] = _place_face(driving.face[t], source, placed, calibration, t, threshold, photo_face_anchor,
                               motion)
        face_pinned[t] = placed[BODY["Nose"], 2] < threshold and faces[t, :, 2].any()
    width, height = reference.width, reference.height
    bodies, out_body = _clip(bodies, width, height)
    hands, out_hands = _clip(hands, width, height)
    faces, out_face = _clip(faces, width, height)
    moved = driving.replace(body=bodies, hands=hands, face=faces, width=width, height=height, retargeted=True,
                            video_path=driving.video_path)
    report = RetargetReport(frames, anchors, grounded, face_pinned, rejected, out_body + out_hands + out_face,
                            (float(calibration.zoom.min()), float(calibration.zoom.max())), calibration.anchor,
                            settings.motion, tuple(BODY_NAMES[j] for j in np.flatnonzero(~calibration.joints &
                                                                                         body_seen.any(axis=0))))
    return moved, report


def _as_body(relative: dict, source: np.ndarray) -> np.ndarray:
    """A piece's relative positions as a body `[20, 3]` (missing elsewhere), to find its ground point."""
    body = np.zeros_like(source)
    for joint, offset in relative.items():
        body[joint] = (*offset, source[joint, 2])
    return body


def _place_face(face: np.ndarray, source: np.ndarray, placed: np.ndarray, calibration: Calibration, t: int,
                threshold: float, photo_anchor, motion: _Motion) -> np.ndarray:
    """Face points `[70, 3]` at the photo's face size: on the retargeted nose, else pinned on the photo's face."""
    if not (face[:, 2] > 0).any():
        return np.zeros_like(face)
    zoom = float(calibration.zoom[t])
    if calibration.photo_face and calibration.driving_face:
        ratio = calibration.photo_face / (zoom * calibration.driving_face)
    else:
        known = [calibration.ratios[bone] for bone in HEAD_BONES if bone in calibration.ratios]
        ratio = (float(np.mean(known)) if known else calibration.ratios.get((1, 0), calibration.scale)) / zoom
    nose = BODY["Nose"]
    if source[nose, 2] >= threshold and placed[nose, 2] >= threshold:
        return _follow(face, source[nose, :2], placed[nose, :2], ratio)
    if face[NOSE_TIP, 2] > 0 and photo_anchor is not None:
        return _follow(face, face[NOSE_TIP, :2], photo_anchor + motion("face", t), ratio)
    return np.zeros_like(face)


def retarget(driving: PoseSequence, reference: PoseSequence, settings: RetargetSettings = RetargetSettings()) -> PoseSequence:
    """The driving motion with the reference photo's proportions, on the photo's canvas."""
    return retarget_with_report(driving, reference, settings)[0]


REGION = {name: region for region, names in (
    ("head", ("Nose", "REye", "LEye", "REar", "LEar")), ("neck", ("Neck",)),
    ("arms", ("RShoulder", "LShoulder", "RElbow", "LElbow", "RWrist", "LWrist")),
    ("hips", ("RHip", "LHip")), ("legs", ("RKnee", "LKnee", "RAnkle", "LAnkle", "LToe", "RToe")))
    for name in names}


def _share(mask: np.ndarray) -> str:
    return f"{100 * float(np.mean(mask)):.0f}%"


def describe(driving: PoseSequence, moved: PoseSequence, report: RetargetReport, threshold: float = 0.3) -> str:
    """One line for the node: how much of the person the footage shows, what was pinned, what is missing.

    For example "upper body only; anchored on neck (96% of frames), face (4%); hands missing in 60% of frames".
    """
    seen = driving.body[..., 2] >= threshold  # [N, 20]
    frames = driving.frame_count
    present = seen.any(axis=1)
    legs = seen[:, [BODY["RKnee"], BODY["LKnee"], BODY["RAnkle"], BODY["LAnkle"]]].any(axis=1)
    elbows = seen[:, [BODY["RElbow"], BODY["LElbow"]]].any(axis=1)
    if legs[present].mean() >= 0.5 if present.any() else False:
        coverage = "full body"
    elif elbows[present].mean() >= 0.5 if present.any() else False:
        coverage = "upper body only"
    else:
        coverage = "head and shoulders only"
    groups = (("neck", ["Neck"]), ("face", ["Nose", "REye", "LEye", "REar", "LEar"]),
              ("shoulders", ["RShoulder", "LShoulder"]), ("hips", ["RHip", "LHip"]))
    pinned = [(name, report.anchors[:, [BODY[j] for j in joints]].any(axis=1) |
               (report.face_pinned if name == "face" else False)) for name, joints in groups]
    pinned.append(("ground under the feet", report.ground))
    used = [f"{name} ({_share(mask)})" for name, mask in pinned if mask.mean() >= 0.02]
    if report.left_out:
        regions = sorted({REGION[name] for name in report.left_out}, key=list(REGION.values()).index)
        coverage += f" ({' and '.join(regions)} not drawn: the photo does not show them)"
    parts = [coverage, f"anchored on {', '.join(used) if used else 'nothing (no person found)'}"]
    hands = (moved.hands[..., 2] > 0).any(axis=2)  # [N, 2]
    missing = ~hands
    if missing.any():
        if abs(missing[:, 0].mean() - missing[:, 1].mean()) < 0.1:
            parts.append(f"hands missing in {_share(missing.all(axis=1))} of frames")
        else:
            parts.append(f"left hand missing in {_share(missing[:, 0])}, right in {_share(missing[:, 1])} of frames")
    face = (moved.face[:, :IBUG_POINTS, 2] > 0).any(axis=1)
    parts.append(f"face drawn in {_share(face)} of frames")
    low, high = report.zoom_range
    if high / max(low, 1e-6) > 1.1:
        parts.append(f"camera zoom {low:.2f}-{high:.2f}x followed smoothly (bone lengths kept)")
    if (~present).any():
        parts.append(f"no person in {int((~present).sum())} of {frames} frames (nothing drawn)")
    if report.dropped_stretched:
        parts.append(f"{report.dropped_stretched} implausibly long bones left out")
    if report.clipped_points:
        parts.append(f"{report.clipped_points} points beyond the canvas edge left out")
    parts.append(f"motion: {report.motion}")
    return "; ".join(parts)
