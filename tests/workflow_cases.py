"""The example workflows shrunk to tiny sizes, and the video each must then produce (shared by the
standalone-runner tests and the ComfyUI host tests)."""
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
TINY_SETS = {name: TINY for name in WORKFLOWS}


def api_graph(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}_api.json").read_text())


def expected_video(name: str) -> tuple[int, int, int, Fraction]:
    """(frames, width, height, fps) of the mp4 the tiny run of a workflow writes."""
    savers = [n for n in api_graph(name).values() if n["class_type"] in ("KinemaDecodeToVideo", "KinemaSaveVideo")]
    assert len(savers) == 1, f"{name}: expected one video output node"
    return TINY_FRAMES, TINY_WIDTH, TINY_HEIGHT, Fraction(savers[0]["inputs"]["fps"])
