"""Long Animate keeps memory flat in the video's length: the shared driving video, looped at 30 fps, runs
through `python -m kinema run` on the tiny models (clips of 77 frames, refert_num 1, as released), and
the peak resident memory of a long run stays within 15% of a 10-second run's, each measured on its own
subprocess. CI compares 3 s with 12 s; KINEMA_HEAVY=1 compares 10 s with 2 minutes.

The driving frames are tiny (16 x 16) because the load node holds them all as one IMAGE batch, as ComfyUI
does; what is measured is everything after it: clips read, sampled, decoded and written one at a time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kinema.core.video import VideoWriter, read_frames
from test_animate_long_cli import long_animate_graph
from tiny_model_folders import model_root  # noqa: F401  (fixture)

HEAVY = os.environ.get("KINEMA_HEAVY") == "1"
DRIVING = Path(__file__).resolve().parents[2] / "shared" / "data" / "wan_examples" / "driving_video.mp4"
FPS, SIZE = 30, 16
SHORT_S, LONG_S = (10, 120) if HEAVY else (3, 12)  # seconds: 4 and 48 clips of 77 frames (CI: 2 and 5)


def looped_driving_video(folder: Path, seconds: int) -> int:
    """The shared driving video shrunk to SIZE x SIZE and looped to `seconds` at 30 fps (driving.mp4 in
    `folder`, with a character.png taken from its first frame); returns the frame count."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    with av.open(str(DRIVING)) as container:
        small = [frame.reformat(width=SIZE, height=SIZE, format="rgb24").to_ndarray()
                 for frame in container.decode(video=0)]  # [SIZE, SIZE, 3] uint8 each
    frames = seconds * FPS
    with VideoWriter(folder / "driving.mp4", FPS) as writer:
        for start in range(0, frames, len(small)):
            writer.write(torch.from_numpy(np.stack(small[: min(len(small), frames - start)])))
    from PIL import Image

    Image.fromarray(small[0]).save(folder / "character.png")
    return frames


# `python -m kinema run ...` that prints its own peak resident set last: VmHWM starts afresh at exec, whereas the
# rusage of a child keeps the RSS it had when forked from this (large) test process.
RUN_AND_REPORT = """
import re, sys
from kinema.cli import main
code = main(sys.argv[1:])
status = open("/proc/self/status").read()
print("peak_rss_kib", re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
sys.exit(code)
"""


def peak_rss_of_run(workflow: Path, models: Path, inputs: Path, output: Path, log: Path) -> int:
    """`kinema run` in its own process; its peak resident set in bytes. Its output goes to a file: a pipe
    nobody reads would stall it once the progress bars filled the pipe."""
    command = [sys.executable, "-c", RUN_AND_REPORT, "run", str(workflow), "--models", str(models), "--input",
               str(inputs), "--output", str(output)]
    with open(log, "w") as sink:
        code = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT).returncode
    text = log.read_text()
    assert code == 0, f"kinema run failed:\n{text[-3000:]}"
    return int(text.rsplit("peak_rss_kib", 1)[1].split()[0]) * 1024


@pytest.mark.skipif(not DRIVING.exists(), reason="the shared driving video is not here")
def test_long_animate_memory_is_flat_in_length(model_root, tmp_path):
    workflow = tmp_path / "long_animate_api.json"
    workflow.write_text(json.dumps(long_animate_graph(77, 1, cfg=1.0, steps=1)))
    peaks = {}
    for seconds in (SHORT_S, LONG_S):
        inputs, output = tmp_path / f"input_{seconds}", tmp_path / f"output_{seconds}"
        frames = looped_driving_video(inputs, seconds)
        peaks[seconds] = peak_rss_of_run(workflow, model_root, inputs, output, tmp_path / f"run_{seconds}.log")
        (written,) = output.rglob("*.mp4")
        assert read_frames(written).frames.shape == (frames, SIZE, SIZE, 3)  # as long as the driving video
        print(f"long_animate seconds={seconds} frames={frames} peak_rss_mib={peaks[seconds] / 2**20:.1f}")
    growth = peaks[LONG_S] / peaks[SHORT_S] - 1
    print(f"long_animate peak_rss_growth={growth:+.1%} ({SHORT_S} s -> {LONG_S} s)")
    assert growth < 0.15
