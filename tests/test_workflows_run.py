"""Every workflow in workflows/ runs end to end through `python -m kinema run` on tiny checkpoints
and writes an mp4 that PyAV opens with the expected frame count, size and frame rate."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from kinema.cli import main
from tiny_model_folders import model_root  # noqa: F401  (fixture)
from workflow_cases import TINY_SETS, WORKFLOW_DIR, WORKFLOWS, expected_video, tiny_workflow_file
from workflow_inputs import make_input_folder


def _probe(path: Path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return frames, stream.codec_context.width, stream.codec_context.height, stream.average_rate


@pytest.fixture(scope="session")
def input_folder(tmp_path_factory) -> Path:
    return make_input_folder(tmp_path_factory.mktemp("input"))


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_runs_to_an_mp4(name, model_root, input_folder, tmp_path, capsys):
    sets = [arg for s in TINY_SETS[name] for arg in ("--set", s)]
    output = tmp_path / "output"
    code = main(["run", str(tiny_workflow_file(name, tmp_path)), "--models", str(model_root),
                 "--input", str(input_folder), "--output", str(output), *sets])
    assert code == 0
    printed = [Path(line) for line in capsys.readouterr().out.split()]
    assert len(printed) == 1 and printed[0].parent.parent == output and printed[0].suffix == ".mp4"
    assert _probe(printed[0]) == expected_video(name)


def test_command_line_entry_point(model_root, tmp_path):
    """The real `python -m kinema run` process, with the model folder from the environment."""
    name = "wan21_t2v_1.3b"
    sets = [arg for s in TINY_SETS[name] for arg in ("--set", s)]
    done = subprocess.run(
        [sys.executable, "-m", "kinema", "run", str(WORKFLOW_DIR / f"{name}_api.json"), "--output", str(tmp_path),
         *sets, "--set", "KinemaSampler.seed=7"],
        capture_output=True, text=True, env={**os.environ, "KINEMA_MODELS": str(model_root)}, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    [path] = done.stdout.split()
    assert _probe(Path(path)) == expected_video(name)

