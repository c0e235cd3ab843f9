"""Every shipped UI workflow carries what ComfyUI's native templates carry: a download link on each loader
(properties.models, read by the front end's Missing Models dialog) pointing at Comfy-Org's repackaged Wan
files, none for the shipped demo model; one group per stage around its nodes; a MarkdownNote naming each file,
its folder, the memory and the time the workflow needs."""
from __future__ import annotations

import json
import re

import pytest

from workflow_cases import WORKFLOW_DIR, WORKFLOWS

# Each loader and its models folder, written out here (not taken from the generator); the file name is the first
# widget of each.
FOLDER_OF = {"KinemaDiTLoader": "diffusion_models", "KinemaVAELoader": "vae", "KinemaTextEncoderLoader": "text_encoders",
             "KinemaCLIPVisionLoader": "clip_vision", "KinemaLoRA": "loras", "KinemaUpscaleModelLoader":
             "latent_upscale_models"}
REPACKAGED = re.compile(r"https://huggingface\.co/Comfy-Org/(Wan_2\.1_ComfyUI_repackaged|Wan_2\.2_ComfyUI_Repackaged)"
                        r"/resolve/main/split_files/(?P<folder>[a-z_]+)/(?P<name>[^/]+)")
LOADERS = set(FOLDER_OF)
DEMO_FILES = {"kinema_demo_dit.safetensors", "kinema_demo_vae.safetensors", "kinema_demo_umt5.safetensors"}


def _ui(name: str) -> dict:
    return json.loads((WORKFLOW_DIR / f"{name}.json").read_text())


def _file_name(node: dict) -> str:
    return node["widgets_values"][0]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_every_loader_links_its_file_except_the_demo(name):
    loaders = [node for node in _ui(name)["nodes"] if node["type"] in LOADERS]
    assert loaders
    for node in loaders:
        file = _file_name(node)
        models = node["properties"].get("models")
        if file in DEMO_FILES:
            assert models is None, f"{file} ships with the pack: no download link"
            continue
        assert models and len(models) == 1, f"node {node['id']} ({file}) has no download link"
        link = models[0]
        match = REPACKAGED.fullmatch(link["url"])
        assert match, link["url"]
        assert link["name"] == match["name"] == file
        assert link["directory"] == match["folder"] == FOLDER_OF[node["type"]]


def _inside(pos, bounding) -> bool:
    x, y, w, h = bounding
    return x <= pos[0] < x + w and y <= pos[1] < y + h


@pytest.mark.parametrize("name", WORKFLOWS)
def test_groups_per_stage_hold_every_node(name):
    ui = _ui(name)
    groups = ui["groups"]
    assert [g["title"].split(" - ")[0] for g in groups] == [f"Step{i}" for i in range(1, len(groups) + 1)]
    assert groups[0]["title"] == "Step1 - Load models" and len(groups) >= 3
    for node in ui["nodes"]:
        if node["type"] == "MarkdownNote":
            assert not any(_inside(node["pos"], g["bounding"]) for g in groups)
            continue
        holders = [g["title"] for g in groups if _inside(node["pos"], g["bounding"])]
        assert len(holders) == 1, f"node {node['id']} {node['type']} is in groups {holders}"
        if node["type"] in LOADERS:
            assert holders == ["Step1 - Load models"]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_markdown_note_lists_files_folders_vram_and_time(name):
    ui = _ui(name)
    notes = [node for node in ui["nodes"] if node["type"] == "MarkdownNote"]
    assert len(notes) == 1
    text = notes[0]["widgets_values"][0]
    assert "**VRAM**:" in text and "**Time**:" in text
    for node in ui["nodes"]:
        if node["type"] in LOADERS:
            assert f"| {_file_name(node)} | models/{FOLDER_OF[node['type']]} |" in text
