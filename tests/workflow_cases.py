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
# The 2-minute workflows shrunk to 9 frames (3 latent frames: 2 windows of 2, sharing 1; the second window
# takes the second prompt), both sampler passes, the x2 upscale, retime to 30 fps and a crop cutting both sides.
# blend instead of dis_flow: OpenCV is an optional extra a ComfyUI venv may lack (dis_flow has its own tests).
LONG_FRAMES, LONG_CROP = 9, (120, 60)
LONG_TINY = (
    *(s for s in TINY if not s.startswith(("KinemaEmptyLatent.frames=", "KinemaSampler."))),
    f"KinemaEmptyLatent.frames={LONG_FRAMES}",
    "Base sampler.steps=2",
    "Refine sampler.steps=2",
    "KinemaLongVideoSettings.window_frames=5",
    "KinemaLongVideoSettings.overlap_frames=4",
    "KinemaPromptSchedule.schedule=0: a red ball\n0.4: a blue ball",
    "KinemaRetimeSettings.method=blend",
    f"KinemaDecodeToVideo.crop_width={LONG_CROP[0]}",
    f"KinemaDecodeToVideo.crop_height={LONG_CROP[1]}",
)
LONG_WORKFLOWS = [name for name in WORKFLOWS if "_2min_" in name]
TINY_SETS.update({name: LONG_TINY for name in LONG_WORKFLOWS})
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
    fps = Fraction(savers[0]["inputs"]["fps"])
    if name not in LONG_WORKFLOWS:
        return TINY_FRAMES, TINY_WIDTH, TINY_HEIGHT, fps
    [retime] = [n for n in api_graph(name).values() if n["class_type"] == "KinemaRetimeSettings"]
    fps_out = Fraction(retime["inputs"]["fps_out"])
    return (LONG_FRAMES - 1) * fps_out // fps + 1, *LONG_CROP, fps_out  # N frames -> floor((N-1) out/in) + 1
