"""Checks pose extraction and retargeting by eye, and measures how often the person is found.

Writes into OUT (a folder):
  contact_sheet.png      sampled driving frames with the extracted skeleton drawn over them
  retarget_overlay.png   the reference photo with the retargeted skeleton of the same frames drawn over it
  face_crops.png         Wan-Animate face crops (512 x 512) of the same frames
  detection.json         per-part detection rates over the extracted frames

Usage: python scripts/pose_contact_sheet.py DRIVING_VIDEO REFERENCE_IMAGE OUT [--step N] [--tiles K]
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

from kinema.core.pose.face_crops import crop_face, face_boxes
from kinema.core.pose.extract_mediapipe import ExtractSettings, extract_images, extract_video, iter_video_frames
from kinema.core.pose.render import iter_render
from kinema.core.pose.retarget import retarget
from kinema.core.pose.smoothing import clean
from kinema.core.pose.types import BODY, PoseSequence

TILE_WIDTH = 480  # pixels of each picture in a sheet
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("image")
    parser.add_argument("out", type=Path)
    parser.add_argument("--step", type=int, default=1, help="extract every n-th frame (default: all)")
    parser.add_argument("--tiles", type=int, default=12, help="frames shown in the contact sheet")
    parser.add_argument("--detect-long-side", type=int, default=960, help="detection resolution (0 = full)")
    parser.add_argument("--overwrite", action="store_true", help="replace artefacts already in OUT")
    args = parser.parse_args(argv)
    rates = make_artefacts(args.video, args.image, args.out, args.step, args.tiles, args.detect_long_side,
                           args.overwrite)
    print(json.dumps(rates, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
