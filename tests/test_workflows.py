"""workflows/: the files match their generator, and each UI file says the same as its API file.

The UI -> API conversion here is written independently of the generator, the way ComfyUI's
front end reads a saved graph: widget values by position in INPUT_TYPES order (plus the extra
'control_after_generate' value after a seed), sockets through the links array.
"""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from kinema.nodes import NODE_CLASS_MAPPINGS
from workflow_cases import WORKFLOW_DIR, WORKFLOWS

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
NOTE = "MarkdownNote"


def _generator():
    spec = importlib.util.spec_from_file_location("make_workflows", WORKFLOW_DIR.parent / "scripts" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _ui_to_api(ui: dict) -> dict:
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node["type"] == NOTE:
            continue  # the front end's own note: not part of the prompt
        assert node["type"] in NODE_CLASS_MAPPINGS, f"missing node type {node['type']}"
        spec = NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES()
        values = iter(node["widgets_values"])
        sockets = {entry["name"]: entry for entry in node["inputs"]}
        inputs = {}
        for section in ("required", "optional"):
            for name, (kind, *rest) in spec.get(section, {}).items():
                options = rest[0] if rest else {}
                if isinstance(kind, list) or kind in WIDGET_TYPES:
                    inputs[name] = next(values)
                    if options.get("control_after_generate"):
                        assert next(values) in ("fixed", "increment", "decrement", "randomize")
                elif sockets.get(name, {}).get("link") is not None:
                    link = links[sockets[name]["link"]]
                    assert link[3] == node["id"], f"link {link[0]} does not end at node {node['id']}"
                    inputs[name] = [str(link[1]), link[2]]
        assert next(values, None) is None, f"node {node['id']}: more widget values than widgets"
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def test_workflows_exist_for_each_example():
    assert {"wan21_t2v_1.3b", "wan22_ti2v_5b", "wan22_t2v_a14b", "wan22_t2v_a14b_4step_lora", "animate_a_photo",
            "vace_pose_control", "wan21_1.3b_2min_1080p30", "wan21_14b_2min_1080p30", "wan22_ti2v_5b_2min_1080p30",
            "demo_2min_30fps", "wan21_i2v_14b_480p", "wan21_i2v_14b_720p", "wan21_flf2v_14b_720p",
            "wan22_i2v_a14b"} <= set(WORKFLOWS)
    for name in WORKFLOWS:
        assert (WORKFLOW_DIR / f"{name}.json").exists(), f"{name}: UI-format file missing"


def test_files_match_the_generator():
    rendered = _generator().render_all()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in WORKFLOW_DIR.glob("*.json")}
    assert sorted(on_disk) == sorted(rendered), "workflows/ holds files the generator does not make (or misses some)"
    stale = [name for name, text in rendered.items() if on_disk[name] != text]
    assert not stale, f"out of date, run python scripts/make_workflows.py: {stale}"


def test_check_mode_reports_drift(tmp_path, monkeypatch, capsys):
    generator = _generator()
    for name, text in generator.render_all().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.setattr(generator, "WORKFLOWS", tmp_path)
    assert generator.main(["--check"]) == 0
    (tmp_path / "wan21_t2v_1.3b_api.json").write_text("{}", encoding="utf-8")
    assert generator.main(["--check"]) == 1
    assert "wan21_t2v_1.3b_api.json" in capsys.readouterr().err


@pytest.mark.parametrize("name", WORKFLOWS)
def test_ui_file_says_what_the_api_file_says(name):
    ui = json.loads((WORKFLOW_DIR / f"{name}.json").read_text())
    api = json.loads((WORKFLOW_DIR / f"{name}_api.json").read_text())
    assert {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()} == _ui_to_api(ui)


@pytest.mark.parametrize("name", WORKFLOWS)
def test_ui_file_is_a_consistent_litegraph(name):
    ui = json.loads((WORKFLOW_DIR / f"{name}.json").read_text())
    nodes = {node["id"]: node for node in ui["nodes"]}
    assert ui["last_node_id"] == max(nodes) and ui["last_link_id"] == max((l[0] for l in ui["links"]), default=0)
    for link_id, origin, origin_slot, target, target_slot, kind in ui["links"]:
        output = nodes[origin]["outputs"][origin_slot]
        socket = nodes[target]["inputs"][target_slot]
        assert link_id in output["links"] and socket["link"] == link_id
        assert output["type"] == kind and kind in socket["type"].split(",")  # an input may take several types
        node_class = NODE_CLASS_MAPPINGS[nodes[origin]["type"]]
        assert node_class.RETURN_TYPES[origin_slot] == kind
