"""The input folder the pose workflows read (character photo, driving video) plus the OpenPose JSON
poses the tiny runs use instead of MediaPipe, which the test environment cannot install."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from kinema.core.pose.types import BODY
from kinema.core.video import VideoWriter

PHOTO_SIZE = (48, 64)  # (width, height): a portrait photo
DRIVING_SIZE = (64, 48)
DRIVING_FRAMES = 5
# (x, y) as fractions of the canvas: an upper body whose right arm rises frame by frame.
UPPER_BODY = {"Nose": (0.5, 0.2), "Neck": (0.5, 0.4), "RShoulder": (0.38, 0.4), "LShoulder": (0.62, 0.4),
              "RElbow": (0.32, 0.6), "RWrist": (0.28, 0.8), "LElbow": (0.68, 0.6), "LWrist": (0.7, 0.8),
              "REye": (0.47, 0.17), "LEye": (0.53, 0.17)}


def openpose_frame(width: int, height: int, raise_arm: float) -> dict:
    """One OpenPose JSON frame (pixels, canvas size included) of UPPER_BODY, right wrist raised by `raise_arm`."""
    body = np.zeros((18, 3))
    for name, (x, y) in UPPER_BODY.items():
        y -= raise_arm if name in ("RElbow", "RWrist") else 0.0
        body[BODY[name]] = (x * width, y * height, 1.0)
    face = np.zeros((70, 3))
    face[:68] = np.c_[np.linspace(0.44, 0.56, 68) * width, np.linspace(0.1, 0.3, 68) * height, np.ones(68)]
    person = {"pose_keypoints_2d": body.ravel().tolist(), "face_keypoints_2d": face.ravel().tolist(),
              "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}
    return {"version": 1.3, "people": [person], "canvas_width": width, "canvas_height": height}


def make_input_folder(root: Path) -> Path:
    """Writes character.png, driving.mp4 and their poses (character_pose.json, driving_pose.json), and the I2V
    examples' first_frame.png and last_frame.png into `root`."""
    root.mkdir(parents=True, exist_ok=True)
    if (root / "driving.mp4").exists():
        return root
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3), dtype=np.uint8)
    Image.fromarray(photo).save(root / "character.png")
    for name in ("first_frame.png", "last_frame.png"):  # any picture size: the sampler fits it to the video
        Image.fromarray(rng.integers(0, 256, (PHOTO_SIZE[1], PHOTO_SIZE[0], 3), dtype=np.uint8)).save(root / name)
    (root / "character_pose.json").write_text(json.dumps(openpose_frame(*PHOTO_SIZE, 0.0)))
    frames = rng.integers(0, 256, (DRIVING_FRAMES, DRIVING_SIZE[1], DRIVING_SIZE[0], 3), dtype=np.uint8)
    with VideoWriter(root / "driving.mp4", fps=30) as writer:
        writer.write(torch.from_numpy(frames))
    poses = [openpose_frame(*DRIVING_SIZE, 0.05 * t) for t in range(DRIVING_FRAMES)]
    (root / "driving_pose.json").write_text(json.dumps(poses))
    return root
