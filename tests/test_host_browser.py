"""Every UI workflow loaded into ComfyUI's own frontend, in a real headless Chromium driven by Playwright.

One ComfyUI (tests/comfyui_server.py: read-only checkout, temporary --base-directory, the pack linked in
custom_nodes, no model files) serves its frontend; one browser page loads each workflows/*.json (not the
*_api.json) through `app.loadGraphData`, as opening the file does. Checked per workflow:
- every node type is registered with the frontend (none falls back to a "missing node" placeholder), and
  no missing-node-types dialog opens;
- every link survives loading;
- the demo workflows open without a Missing Models dialog and with each combo's value among the choices
  ComfyUI serves (the demo files ship in demo_model/, which the pack registers at import). The frontend's
  dialog only checks files that carry a download link, which the demo's don't, so the combo check is the
  one that sees an unregistered demo folder (ComfyUI's "Value not in list" at queue time);
- every other workflow's Missing Models dialog lists exactly the files its loaders link, since none is present.
A screenshot of each lands in KINEMA_ARTIFACTS/browser/ (default: a pytest temporary folder).

The browser: CHROMIUM, else `chromium` on PATH (Debian's package; .ci/run installs it). The test skips
with the reason when that or the `playwright` package is missing. Requests to anything but the local
ComfyUI are refused inside the browser: the Missing Models dialog would otherwise ask the model hosts
for file sizes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from comfyui_server import get_json, link_pack, post_json, running_comfyui
from workflow_cases import WORKFLOW_DIR

pytestmark = pytest.mark.host

UI_WORKFLOWS = sorted(p.stem for p in WORKFLOW_DIR.glob("*.json") if not p.stem.endswith("_api"))
DEMO_WORKFLOWS = [name for name in UI_WORKFLOWS if name.startswith("demo_")]
VIEWPORT = {"width": 2560, "height": 1440}  # large, so that the whole graph fits at a readable zoom
READY_TIMEOUT_MS = 120_000
# A fresh user folder would open the template browser over the canvas on the first page load; below a font
# size of 8 px (a whole graph fitted to the view) the canvas draws nodes as bare boxes, without their text.
SETTINGS = {"Comfy.TutorialCompleted": True, "LiteGraph.Canvas.MinFontSizeForLOD": 0}

# What the loaded graph looks like to the frontend: node types it lacks (a missing node becomes a
# placeholder flagged has_errors), links, and the text of each open dialog.
GRAPH_STATE = """() => ({
  missing: app.graph.nodes
    .filter(n => !(n.type in LiteGraph.registered_node_types) || n.has_errors)
    .map(n => n.type),
  links: app.graph.serialize().links.length,
  dialogs: [...document.querySelectorAll('.p-dialog')].map(d => d.innerText),
})"""
# Combo widgets whose value is not one of their choices: [node title, widget, value].
BAD_COMBOS = """() => app.graph.nodes.flatMap(n => (n.widgets || [])
  .filter(w => w.type === 'combo' && Array.isArray(w.options?.values) && !w.options.values.includes(w.value))
  .map(w => [n.title, w.name, String(w.value)]))"""
MISSING_NODES_TEXT = "the following node types were not found"  # the frontend's dialog, in English
MISSING_MODELS_TITLE = "Missing Models"
LOAD = "async (graph) => { await app.loadGraphData(graph); }"
FIT_VIEW = "() => app.extensionManager.command.execute('Comfy.Canvas.FitView')"


def _chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _linked_models(graph: dict) -> set[str]:
    """'folder / file' for each model a node links (properties.models with a url), as the dialog writes them."""
    return {f"{m['directory']} / {m['name']}" for node in graph["nodes"]
            for m in node.get("properties", {}).get("models", []) if m.get("url")}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = os.environ.get("KINEMA_ARTIFACTS")
    folder = Path(root) / "browser" if root else tmp_path_factory.mktemp("browser")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def frontend(tmp_path_factory):
    """One ComfyUI and one Chromium page with the frontend ready (its node types fetched from /object_info)."""
    playwright_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (test extra)")
    chromium = _chromium()
    if not chromium:
        pytest.skip("needs a Chromium binary: apt-get install chromium, or set CHROMIUM")
    base = tmp_path_factory.mktemp("comfyui_browser")
    link_pack(base)
    with running_comfyui(base) as url, playwright_api.sync_playwright() as playwright:
        post_json(url + "/settings", SETTINGS)
        node_count = len(get_json(url + "/object_info"))
        browser = playwright.chromium.launch(executable_path=chromium)
        try:
            page = browser.new_page(viewport=VIEWPORT, locale="en-US")  # the dialog texts checked are English
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url)
                       else route.abort("blockedbyclient"))
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(f"{error}\n{error.stack}"))
            page.goto(url)
            # the frontend registers every node ComfyUI serves (plus a few of its own, such as MarkdownNote)
            page.wait_for_function(f"window.app?.graph && Object.keys(LiteGraph.registered_node_types).length"
                                   f" >= {node_count}", timeout=READY_TIMEOUT_MS)
            yield page, errors
        finally:
            browser.close()


def _close_dialogs(page) -> None:
    for close in page.locator(".p-dialog .p-dialog-close-button").all():
        close.click()
    page.wait_for_function("document.querySelectorAll('.p-dialog').length === 0")


def _open(page, errors: list[str], graph: dict, expect_dialog: bool) -> dict:
    _close_dialogs(page)  # the previous workflow's
    # only what loading the graph raises: this frontend (1.27) raises once at start-up on its own settings
    errors.clear()
    page.evaluate(LOAD, graph)
    if expect_dialog:  # it opens once its Vue component has rendered, after loadGraphData returns
        page.wait_for_selector(".p-dialog", timeout=30_000)
    page.evaluate(FIT_VIEW)
    page.wait_for_timeout(500)  # the canvas redraws on the next animation frames
    return page.evaluate(GRAPH_STATE)


@pytest.mark.parametrize("name", UI_WORKFLOWS)
def test_workflow_opens_in_the_frontend(frontend, artifacts, name):
    page, errors = frontend
    graph = json.loads((WORKFLOW_DIR / f"{name}.json").read_text())
    state = _open(page, errors, graph, expect_dialog=name not in DEMO_WORKFLOWS)
    if state["dialogs"]:
        page.screenshot(path=str(artifacts / f"{name}_dialog.png"))
        _close_dialogs(page)
    page.screenshot(path=str(artifacts / f"{name}.png"))
    assert not errors, f"the page raised while loading {name}: {errors}"
    assert state["missing"] == [], f"node types the frontend does not know: {state['missing']}"
    assert not [d for d in state["dialogs"] if MISSING_NODES_TEXT in d], state["dialogs"]
    assert state["links"] == len(graph["links"]), "links were dropped on loading"
    model_dialogs = [d for d in state["dialogs"] if MISSING_MODELS_TITLE in d]
    if name in DEMO_WORKFLOWS:
        assert model_dialogs == [], f"the demo's files are not found: {model_dialogs}"
        assert page.evaluate(BAD_COMBOS) == [], "values ComfyUI would refuse ('Value not in list')"
    else:
        # none of the files is in the empty models folder: the dialog offers each linked one for download
        assert len(model_dialogs) == 1, state["dialogs"]
        listed = {line.strip() for line in model_dialogs[0].splitlines() if " / " in line}
        assert listed == _linked_models(graph)


def test_the_checks_catch_a_missing_node_and_a_missing_file(frontend, artifacts):
    """The checks above can fail: a node type nobody registers is reported and the frontend's dialog opens;
    a loader naming a file ComfyUI does not list is reported."""
    page, errors = frontend
    graph = json.loads((WORKFLOW_DIR / f"{DEMO_WORKFLOWS[0]}.json").read_text())
    kinema_nodes = [n for n in graph["nodes"] if n["type"].startswith("Kinema")]
    kinema_nodes[0]["type"] = "KinemaNoSuchNode"
    loader = next(n for n in graph["nodes"] if n["type"] == "KinemaVAELoader")
    loader["widgets_values"][0] = "no_such_vae.safetensors"
    state = _open(page, errors, graph, expect_dialog=True)
    page.screenshot(path=str(artifacts / "control_missing_node.png"))
    assert state["missing"] == ["KinemaNoSuchNode"]
    assert [d for d in state["dialogs"] if MISSING_NODES_TEXT in d and "KinemaNoSuchNode" in d], state["dialogs"]
    assert [c[1:] for c in page.evaluate(BAD_COMBOS)] == [["vae_name", "no_such_vae.safetensors"]]
