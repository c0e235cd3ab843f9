"""The pack inside a real ComfyUI: start-up log, /object_info, every example workflow via `kinema submit`.

Runs only when KINEMA_COMFYUI points at a ComfyUI checkout (its python: KINEMA_COMFYUI_PYTHON,
default this interpreter; it needs ComfyUI's requirements and ours; .ci/comfyui_venv builds one).
Everything ComfyUI writes goes to a temporary --base-directory (tests/comfyui_server.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from comfyui_server import REPO, get_json, link_pack, running_comfyui
from kinema.core.video import read_video
from kinema.nodes import NODE_CLASS_MAPPINGS
from tiny_model_folders import make_model_folders
from workflow_cases import TINY_SETS, WORKFLOWS, expected_video, tiny_workflow_file
from workflow_inputs import make_input_folder

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfyui_base")
    link_pack(base)
    make_model_folders(base / "models")
    make_input_folder(base / "input")
    with running_comfyui(base) as url:
        yield {"url": url, "base": base, "log": base / "comfyui.log"}


def test_startup_log_shows_kinema_loaded_cleanly(comfyui):
    log = comfyui["log"].read_text()
    pack = str(comfyui["base"] / "custom_nodes" / "kinema")
    timing = [line for line in log.splitlines() if line.rstrip().endswith(pack) or pack + " " in line]
    assert timing, f"Kinema missing from the custom node import times:\n{log[-3000:]}"
    assert not any("IMPORT FAILED" in line for line in timing), "\n".join(timing)
    assert f"Cannot import {pack}" not in log
    ours = [line for line in log.splitlines() if "Kinema:" in line or "kinema" in line.lower() and "warn" in line.lower()]
    assert not [line for line in ours if "disabled" in line or "warn" in line.lower()], "\n".join(ours)


def test_object_info_lists_every_node_with_its_inputs(comfyui):
    info = get_json(comfyui["url"] + "/object_info")
    for node_id, node_class in NODE_CLASS_MAPPINGS.items():
        assert node_id in info, f"{node_id} missing from /object_info"
        declared = node_class.INPUT_TYPES()
        served = info[node_id]
        for section in ("required", "optional"):
            assert list(served["input"].get(section, {})) == list(declared.get(section, {})), (node_id, section)
        assert served["category"].startswith("Kinema/")
        assert served["output"] == list(node_class.RETURN_TYPES)
    models = info["KinemaDiTLoader"]["input"]["required"]["model_name"][0]
    assert "wan2.1_t2v_1.3B_fp16.safetensors" in models


@pytest.mark.parametrize("name", WORKFLOWS)
def test_submit_workflow_writes_the_mp4(comfyui, name, tmp_path):
    sets = [arg for s in TINY_SETS[name] for arg in ("--set", s)]
    command = [sys.executable, "-m", "kinema", "submit", str(tiny_workflow_file(name, tmp_path)),
               "--server", comfyui["url"], "--output", str(tmp_path / "downloads"), "--timeout", "600", *sets]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stderr}\n--- ComfyUI log ---\n{comfyui['log'].read_text()[-4000:]}"
    downloaded = [Path(line) for line in done.stdout.split()]
    assert len(downloaded) == 1 and downloaded[0].suffix == ".mp4"
    in_output = list((comfyui["base"] / "output").rglob(downloaded[0].name))
    assert in_output, "the mp4 is not in ComfyUI's output folder"
    frames, width, height, fps = expected_video(name)
    video = read_video(in_output[0])
    assert (video.frame_count, video.frames.shape[2], video.frames.shape[1], video.fps) == (frames, width, height, fps)
    assert downloaded[0].read_bytes() == in_output[0].read_bytes()


def test_interrupt_stops_the_sampler(comfyui, tmp_path):
    """POST /interrupt while KinemaSampler runs: ComfyUI's ProgressBar hook raises, the prompt ends interrupted."""
    name = "wan21_t2v_1.3b"
    sets = [arg for s in (*TINY_SETS[name], "KinemaSampler.steps=1000", "KinemaSampler.seed=99")
            for arg in ("--set", s)]
    command = [sys.executable, "-m", "kinema", "submit", str(REPO / "workflows" / f"{name}_api.json"),
               "--server", comfyui["url"], "--output", str(tmp_path), "--timeout", "600", *sets]
    videos_before = sorted((comfyui["base"] / "output").rglob("*.mp4"))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:  # progress lines: "node 6: 3/1000"
        if line.startswith("node 6: ") and "/1000" in line:
            break
    request = urllib.request.Request(comfyui["url"] + "/interrupt", data=b"{}", method="POST")
    urllib.request.urlopen(request, timeout=30).close()
    _, rest = process.communicate(timeout=300)
    assert process.returncode == 1 and "was interrupted" in rest, rest
    assert sorted((comfyui["base"] / "output").rglob("*.mp4")) == videos_before


PREVIEW_SCRIPT = """
import importlib, importlib.util, sys, torch
from comfy.cli_args import args, LatentPreviewMethod
args.cpu, args.preview_method = True, LatentPreviewMethod.Auto
import folder_paths, comfy.model_management, comfy.utils
spec = importlib.util.spec_from_file_location("kinema_pack", sys.argv[1] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[1]])
pack = importlib.util.module_from_spec(spec)
sys.modules["kinema_pack"] = pack
spec.loader.exec_module(pack)
assert "KinemaSampler" in pack.NODE_CLASS_MAPPINGS  # what ComfyUI reads first
host = importlib.import_module("kinema_pack.nodes.host")
calls = []
comfy.utils.PROGRESS_BAR_HOOK = lambda value, total, preview, node_id=None: calls.append((value, total, preview))
with host.progress("preview", 2) as progress:
    progress.step(1, 2, torch.randn(1, 16, 3, 4, 6))  # Wan 2.1 latent
    progress.step(2, 2, torch.randn(1, 48, 3, 4, 6))  # Wan 2.2 (TI2V-5B) latent
print([(value, total, preview[0], preview[1].size) for value, total, preview in calls])
"""


def test_progress_sends_latent_previews_with_comfyuis_previewer():
    """ComfyUI's own modules, in-process: our progress feeds its ProgressBar hook JPEG latent previews."""
    checkout = os.environ["KINEMA_COMFYUI"]
    python = os.environ.get("KINEMA_COMFYUI_PYTHON", sys.executable)
    done = subprocess.run([python, "-c", PREVIEW_SCRIPT, str(REPO)], cwd=checkout, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": checkout}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[(1, 2, 'JPEG', (6, 4)), (2, 2, 'JPEG', (6, 4))]"
