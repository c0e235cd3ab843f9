"""The example workflows shrunk to tiny sizes, and the video each must then produce (shared by the
standalone-runner tests and the ComfyUI host tests).

Pose extraction needs MediaPipe, which cannot be installed beside the test dependencies (see
core/pose/extract_mediapipe.py), so the tiny runs read the same poses from OpenPose JSON files
(tests/workflow_inputs.py): `tiny_graph` rewires each pose node from its picture input to a file.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import kinema

WORKFLOW_DIR = Path(kinema.__file__).resolve().parent / "workflows"
WORKFLOWS = sorted(p.name[: -len("_api.json")] for p in WORKFLOW_DIR.glob("*_api.json"))
TINY_WIDTH, TINY_HEIGHT, TINY_FRAMES = 64, 32, 5  # sides a multiple of 32 suit every Wan VAE
TINY = (
    "KinemaEmptyLatent.aspect_ratio=custom (width x height)",
    f"KinemaEmptyLatent.width={TINY_WIDTH}",
    f"KinemaEmptyLatent.height={TINY_HEIGHT}",
    f"KinemaEmptyLatent.frames={TINY_FRAMES}",
    "KinemaEmptyLatent.seconds=0",
    "KinemaSampler.steps=2",
)
# Animate / VACE: the conditioning node sets the video size; the pose drawing is made that small too.
BRANCH_TINY = (f"Pose video.width={TINY_WIDTH}", f"Pose video.height={TINY_HEIGHT}")
TINY_SETS = {name: TINY for name in WORKFLOWS}
TINY_SETS["animate_a_photo"] = (*TINY, *BRANCH_TINY, *(f"KinemaAnimateConditioning.{k}={v}" for k, v in (
    ("width", TINY_WIDTH), ("height", TINY_HEIGHT), ("frames", TINY_FRAMES))))
TINY_SETS["vace_pose_control"] = (*TINY, *BRANCH_TINY, *(f"KinemaVACEConditioning.{k}={v}" for k, v in (
    ("width", TINY_WIDTH), ("height", TINY_HEIGHT), ("frames", TINY_FRAMES))))
POSE_FILES = {"Driving pose": "driving_pose.json", "Character pose": "character_pose.json"}  # node title -> file


def api_graph(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}_api.json").read_text())


def tiny_graph(name: str) -> dict:
    """The API graph of a workflow with its pose nodes reading OpenPose JSON from the input folder."""
    graph = api_graph(name)
    for node in graph.values():
        title = node.get("_meta", {}).get("title")
        if node["class_type"] == "KinemaPoseExtract" and title in POSE_FILES:
            del node["inputs"]["images"]
            node["inputs"]["video_path"] = POSE_FILES[title]
    return graph


def tiny_workflow_file(name: str, directory: Path) -> Path:
    """`tiny_graph(name)` written as an API-format file in `directory`."""
    path = directory / f"{name}_api.json"
    path.write_text(json.dumps(tiny_graph(name), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def expected_video(name: str) -> tuple[int, int, int, Fraction]:
    """(frames, width, height, fps) of the mp4 the tiny run of a workflow writes."""
    savers = [n for n in api_graph(name).values() if n["class_type"] in ("KinemaDecodeToVideo", "KinemaSaveVideo")]
    assert len(savers) == 1, f"{name}: expected one video output node"
    return TINY_FRAMES, TINY_WIDTH, TINY_HEIGHT, Fraction(savers[0]["inputs"]["fps"])
