"""Checks pose extraction and retargeting by eye, and measures how often the person is found.

Writes into OUT (a folder):
  contact_sheet.png      sampled driving frames with the extracted skeleton drawn over them
  retarget_overlay.png   the reference photo with the retargeted skeleton of the same frames drawn over it
  face_crops.png         Wan-Animate face crops (512 x 512) of the same frames
  detection.json         per-part detection rates over the extracted frames

With --footage, instead the test footage made from the driving video (core/pose/footage.py: push-ins,
crops, pans, mirror, a second person, leaving and coming back, a small far-away person): for each
case it extracts the pose from the transformed pictures, retargets it onto the photo, prints the
three fit figures (core/pose/fit_checks.py) and writes footage_<case>.png (top row: the case's
frames with the extracted skeleton; bottom row: the photo with the retargeted skeleton) and
footage.json.

Usage: python scripts/pose_contact_sheet.py DRIVING_VIDEO REFERENCE_IMAGE OUT [--step N] [--tiles K]
           [--footage [CASE,CASE...]] [--cache DIR]
Needs MediaPipe 0.10.14 (pip install mediapipe==0.10.14).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from kinema.core.pose import footage
from kinema.core.pose.face_crops import crop_face, face_boxes
from kinema.core.pose.extract_mediapipe import ExtractSettings, extract_images, extract_video, iter_video_frames
from kinema.core.pose.fit_checks import FitFigures, measure_fit
from kinema.core.pose.render import iter_render
from kinema.core.pose.retarget import retarget, retarget_with_report
from kinema.core.pose.smoothing import clean
from kinema.core.pose.types import BODY, PoseSequence

TILE_WIDTH = 480  # pixels of each picture in a sheet
FOOTAGE_CANVAS = (640, 360)  # the test footage's frame size: small enough to extract quickly
FOOTAGE_SOURCE = (960, 540)  # the driving video is shrunk to this before the camera moves
COLUMNS = 4
# What the acceptance criterion asks to be found in a frame.
REQUIRED_BODY = ("Neck", "RShoulder", "LShoulder", "RWrist", "LWrist")


def detection_rates(pose: PoseSequence, threshold: float = 0.5) -> dict:
    """Fraction of frames where each part (and all of them together) was found."""
    body = pose.body[..., 2] >= threshold  # [N, 20]
    face = (pose.face[:, :68, 2] > 0).any(axis=1)  # [N]
    hands = (pose.hands[..., 2] > 0).any(axis=2)  # [N, 2]
    rates = {name: float(body[:, BODY[name]].mean()) for name in REQUIRED_BODY}
    rates.update(face=float(face.mean()), left_hand=float(hands[:, 0].mean()), right_hand=float(hands[:, 1].mean()))
    everything = body[:, [BODY[name] for name in REQUIRED_BODY]].all(axis=1) & face
    rates["person_shoulders_wrists_face"] = float(everything.mean())
    rates["frames"] = pose.frame_count
    return rates


def _read_image(path: str) -> np.ndarray:
    import av

    with av.open(path) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")  # [H, W, 3]


def _tile(image: np.ndarray, label: str) -> np.ndarray:
    import cv2

    height = round(image.shape[0] * TILE_WIDTH / image.shape[1])
    tile = cv2.resize(image, (TILE_WIDTH, height), interpolation=cv2.INTER_AREA)
    cv2.putText(tile, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    return tile


def _sheet(tiles: list) -> np.ndarray:
    rows = []
    for start in range(0, len(tiles), COLUMNS):
        row = tiles[start:start + COLUMNS]
        row += [np.zeros_like(tiles[0])] * (COLUMNS - len(row))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)


def _write_png(path: Path, image: np.ndarray, overwrite: bool) -> None:
    import cv2

    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; choose another output folder or pass --overwrite")
    handle, temporary = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(handle)
    if not cv2.imwrite(temporary, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        os.unlink(temporary)
        raise OSError(f"could not write {path}")
    os.chmod(temporary, 0o644)  # mkstemp makes it private; an artefact is for reading
    os.replace(temporary, path)


def make_artefacts(video: str, image: str, out: Path, step: int = 1, tiles: int = 12,
                   detect_long_side: int = 960, overwrite: bool = False) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    settings = ExtractSettings(frame_step=step, detect_long_side=detect_long_side)
    driving = extract_video(video, settings=settings)
    rates = detection_rates(driving)
    photo = _read_image(image)
    reference = extract_images(photo[None], settings=settings)
    moved = retarget(clean(driving), reference)
    picks = np.linspace(0, driving.frame_count - 1, min(tiles, driving.frame_count)).round().astype(int)
    chosen = set(picks.tolist())
    frames = [frame for index, frame in enumerate(iter_video_frames(video, step)) if index in chosen]
    drawn = [next(iter_render(driving.frames([i]), "openpose", background=frame)) for i, frame in zip(picks, frames)]
    _write_png(out / "contact_sheet.png",
               _sheet([_tile(d, f"frame {i * step}") for i, d in zip(picks, drawn)]), overwrite)
    overlays = [_tile(next(iter_render(reference, "openpose", background=photo)), "reference")]
    overlays += [_tile(next(iter_render(moved.frames([i]), "openpose", background=photo)), f"frame {i * step}")
                 for i in picks]
    _write_png(out / "retarget_overlay.png", _sheet(overlays), overwrite)
    boxes = face_boxes(driving)
    _write_png(out / "face_crops.png",
               _sheet([_tile(crop_face(frame, boxes[i]), f"frame {i * step}") for i, frame in zip(picks, frames)]),
               overwrite)
    report = out / "detection.json"
    if report.exists() and not overwrite:
        raise FileExistsError(f"{report} exists; choose another output folder or pass --overwrite")
    report.write_text(json.dumps(rates, indent=2))
    return rates


def _source_frames(video: str, step: int) -> list:
    import cv2

    return [cv2.resize(frame, FOOTAGE_SOURCE, interpolation=cv2.INTER_AREA) for frame in iter_video_frames(video, step)]


def _camera_key(case: footage.FootageCase, frames: int, canvas: tuple) -> str:
    """A short digest of the case's camera path, so a cached pose is not reused after the case changes."""
    import hashlib

    times = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    cameras = [case.camera] + ([case.second] if case.second is not None else [])
    path = np.stack([footage.matrix(camera, t, FOOTAGE_SOURCE, canvas) for camera in cameras for t in times])
    return hashlib.sha1(np.round(path, 4).tobytes()).hexdigest()[:10]


def footage_pose(source: list, case: footage.FootageCase, fps: float, cache: Path | None = None,
                 canvas: tuple = FOOTAGE_CANVAS) -> PoseSequence:
    """The pose MediaPipe finds in the case's pictures (read from `cache` when extracted before)."""
    stored = None if cache is None else cache / f"{case.name}_{len(source)}_{canvas[0]}x{canvas[1]}_{_camera_key(case, len(source), canvas)}.npz"
    if stored is not None and stored.is_file():
        data = np.load(stored)
        return PoseSequence(data["body"], data["hands"], data["face"], *canvas, fps=fps, source=f"mediapipe {case.name}")
    frames = np.stack(list(footage.case_frames(iter(source), len(source), case, canvas)))
    pose = extract_images(frames, settings=ExtractSettings(detect_long_side=0), fps=fps)
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(stored, body=pose.body, hands=pose.hands, face=pose.face)
    return pose.replace(source=f"mediapipe {case.name}")


def footage_figures(driving: PoseSequence, reference: PoseSequence) -> tuple[PoseSequence, PoseSequence, FitFigures, object]:
    """Cleans and retargets one case's pose; returns the cleaned pose, the retargeted one, the figures, the report."""
    cleaned = clean(driving)
    moved, report = retarget_with_report(cleaned, reference)
    return cleaned, moved, measure_fit(cleaned, moved, reference), report


def make_footage_sheets(video: str, image: str, out: Path, cases=footage.CASE_NAMES, step: int = 2, tiles: int = 6,
                        cache: Path | None = None, overwrite: bool = False, echo=print) -> dict:
    """Every footage case: extracted, retargeted, measured and drawn; returns name -> FitFigures."""
    out.mkdir(parents=True, exist_ok=True)
    fps = 30.0 / step
    photo = _read_image(image)
    reference = extract_images(photo[None])
    source = _source_frames(video, step)
    results = {}
    for name in cases:
        case = footage.case_named(name)
        cleaned, moved, figures, report = footage_figures(footage_pose(source, case, fps, cache), reference)
        results[name] = figures
        echo(f"{name:20s} {figures.line()}  [zoom {report.zoom_range[0]:.2f}-{report.zoom_range[1]:.2f}]")
        picks = np.linspace(0, len(source) - 1, min(tiles, len(source))).round().astype(int)
        frames = list(footage.case_frames(iter(source), len(source), case, FOOTAGE_CANVAS))
        top = [_tile(next(iter_render(cleaned.frames([i]), "openpose", background=frames[i])), f"{name} {i * step}")
               for i in picks]
        bottom = [_tile(next(iter_render(moved.frames([i]), "openpose", background=photo)), f"retargeted {i * step}")
                  for i in picks]
        columns = len(picks)
        _write_png(out / f"footage_{name}.png",
                   np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
                   if columns else photo, overwrite)
    summary = out / "footage.json"
    if summary.exists() and not overwrite:
        raise FileExistsError(f"{summary} exists; choose another output folder or pass --overwrite")
    summary.write_text(json.dumps({name: {**figures.__dict__, "face_share": figures.face_share}
                                   for name, figures in results.items()}, indent=2))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("image")
    parser.add_argument("out", type=Path)
    parser.add_argument("--step", type=int, default=1, help="extract every n-th frame (default: all)")
    parser.add_argument("--tiles", type=int, default=12, help="frames shown in the contact sheet")
    parser.add_argument("--detect-long-side", type=int, default=960, help="detection resolution (0 = full)")
    parser.add_argument("--overwrite", action="store_true", help="replace artefacts already in OUT")
    parser.add_argument("--footage", nargs="?", const="all", default=None,
                        help=f"instead run the test footage cases (comma-separated, default all: {', '.join(footage.CASE_NAMES)})")
    parser.add_argument("--cache", type=Path, default=None,
                        help="folder keeping the footage cases' extracted poses between runs")
    args = parser.parse_args(argv)
    if args.footage:
        cases = footage.CASE_NAMES if args.footage == "all" else tuple(args.footage.split(","))
        results = make_footage_sheets(args.video, args.image, args.out, cases, step=args.step, cache=args.cache,
                                      overwrite=args.overwrite)
        return 0 if all(f.face_share >= 0.95 and not f.long_bones and not f.outside_points
                        for f in results.values()) else 1
    rates = make_artefacts(args.video, args.image, args.out, args.step, args.tiles, args.detect_long_side,
                           args.overwrite)
    print(json.dumps(rates, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
