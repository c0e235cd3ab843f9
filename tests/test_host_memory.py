"""Kinema's models under ComfyUI's model manager, in a real ComfyUI on the CPU (issue 14):

- after a Kinema run the manager lists the Kinema DiT (with its bytes on the device);
- POST /free releases it: no longer listed, nothing of it left on the device;
- a native model loaded after a Kinema run keeps its memory when Kinema loads again;
- with two experts (Wan2.2 A14B) only the running one holds blocks on the device;
- runs under --lowvram and --novram complete, with the streaming plan those flags ask for;
- in-process, ComfyUI's manager takes memory back from the DiT partially and loads it again for the next forward.

What the manager holds is read through a probe route that only these tests install: a second custom node
folder in the temporary base directory, reading comfy.model_management.current_loaded_models and Kinema's
own list of its models (nodes/host.kinema_models).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from comfyui_server import REPO, get_json, link_pack, post_json, running_comfyui
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs
from tiny_model_folders import make_model_folders
from workflow_cases import TINY_SETS, tiny_workflow_file
from workflow_inputs import make_input_folder

pytestmark = pytest.mark.host

WORKFLOW = "wan21_t2v_1.3b"
DIT_FILE = "wan2.1_t2v_1.3B_fp16.safetensors"
NATIVE_VAE = "native_wan_2.1_vae.safetensors"
WAIT = 120  # seconds for ComfyUI's prompt worker to act on /free

PROBE = '''
import sys
from aiohttp import web
from server import PromptServer
import comfy.model_management as mm


def _kinema_host():
    for name, module in list(sys.modules.items()):
        if name.endswith("nodes.host") and hasattr(module, "kinema_models"):
            return module
    return None


@PromptServer.instance.routes.get("/kinema_probe/models")
async def models(request):
    loaded = [{"patcher": type(m.model).__name__, "class": type(m.model.model).__name__,
               "loaded_bytes": int(m.model.loaded_size()), "size_bytes": int(m.model.model_size())}
              for m in mm.current_loaded_models if m.model is not None]
    host = _kinema_host()
    return web.json_response({"loaded": loaded, "kinema": host.kinema_models() if host is not None else None})

NODE_CLASS_MAPPINGS = {}
'''


def _native_vae(path: Path) -> None:
    """A random Wan2.1 VAE at the released widths (ComfyUI's VAE loader builds those), 16-bit."""
    from diffusers import AutoencoderKLWan
    from safetensors.torch import save_file

    from tiny_vae import official_state_dict

    torch.manual_seed(0)
    tensors = official_state_dict(AutoencoderKLWan(), "2.1")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}, str(path))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """The tiny models and the native VAE, written once and linked into each ComfyUI's base directory."""
    root = make_model_folders(tmp_path_factory.mktemp("memory_models"))
    _native_vae(root / "vae" / NATIVE_VAE)
    return root


def _base(tmp_path_factory, name: str, models: Path) -> Path:
    base = tmp_path_factory.mktemp(name)
    link_pack(base)
    probe = base / "custom_nodes" / "kinema_memory_probe"
    probe.mkdir()
    (probe / "__init__.py").write_text(PROBE)
    (base / "models").symlink_to(models, target_is_directory=True)
    make_input_folder(base / "input")
    return base


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory, models):
    # --cache-lru keeps earlier prompts' outputs (the native model) alive across prompts; by default ComfyUI
    # drops the outputs of nodes the next prompt lacks, and the model with them.
    base = _base(tmp_path_factory, "memory_base", models)
    with running_comfyui(base, ["--cache-lru", "20"]) as url:
        yield {"url": url, "base": base, "log": base / "comfyui.log"}


def _probe(server) -> dict:
    return get_json(server["url"] + "/kinema_probe/models")


def _kinema(state: dict, name: str) -> list[dict]:
    return [m for m in state["kinema"] if m["name"] == name]


def _run_kinema(server, tmp_path, *sets: str, workflow: str = WORKFLOW) -> None:
    args = [arg for s in (*TINY_SETS[workflow], *sets) for arg in ("--set", s)]
    command = [sys.executable, "-m", "kinema", "submit", str(tiny_workflow_file(workflow, tmp_path)),
               "--server", server["url"], "--output", str(tmp_path / "downloads"), "--timeout", "600", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stderr}\n--- ComfyUI log ---\n{server['log'].read_text()[-4000:]}"


def _run_native_vae_decode(server) -> None:
    """A native graph whose model the manager loads: VAELoader -> VAEDecode of an empty Wan latent."""
    graph = {
        "1": {"class_type": "VAELoader", "inputs": {"vae_name": NATIVE_VAE}},
        "2": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 32, "height": 32, "length": 1,
                                                                  "batch_size": 1}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    prompt_id = post_json(server["url"] + "/prompt", {"prompt": graph})["prompt_id"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        history = get_json(server["url"] + f"/history/{prompt_id}")
        if prompt_id in history:
            status = history[prompt_id]["status"]
            assert status["status_str"] == "success", f"{status}\n{server['log'].read_text()[-4000:]}"
            return
        time.sleep(0.5)
    pytest.fail("the native VAE decode did not finish")


def _wait_for(server, condition, what: str) -> dict:
    deadline = time.monotonic() + WAIT
    while True:
        state = _probe(server)
        if condition(state):
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"{what}; the manager holds: {state}")
        time.sleep(0.5)


def test_kinema_dit_is_listed_after_a_run_and_free_releases_it(comfyui, tmp_path):
    # blocks_on_device=1: the kept block is a private copy "on the device" (the CPU here), so freeing is visible
    _run_kinema(comfyui, tmp_path, "KinemaDiTLoader.blocks_on_device=1", "KinemaSampler.seed=11")
    state = _probe(comfyui)
    (dit,) = _kinema(state, DIT_FILE)
    assert dit["listed"] and dit["class"] == "WanDiT" and dit["loaded_bytes"] > 0, state
    assert any(m["patcher"] == "KinemaModelPatcher" and m["class"] == "WanDiT" for m in state["loaded"]), state
    print(f"after a run: {dit}")

    post_json(comfyui["url"] + "/free", {"unload_models": True})
    # the prompt worker unloads while the probe reads: wait for both of its views to agree
    state = _wait_for(comfyui, lambda s: not any(m["listed"] for m in s["kinema"])
                      and not any(m["patcher"] == "KinemaModelPatcher" for m in s["loaded"]),
                      "/free left Kinema models listed")
    assert all(m["loaded_bytes"] == 0 for m in state["kinema"]), state  # device copies freed
    print(f"after /free: {_kinema(state, DIT_FILE)}")


def test_native_model_keeps_its_memory_when_kinema_loads(comfyui, tmp_path):
    _run_native_vae_decode(comfyui)
    (native,) = [m for m in _probe(comfyui)["loaded"] if m["patcher"] == "ModelPatcher"]
    assert native["loaded_bytes"] == native["size_bytes"] > 0, native
    # a loader input the earlier runs did not use: the DiT loader runs again (and asks the manager for room)
    _run_kinema(comfyui, tmp_path, "KinemaDiTLoader.blocks_on_device=0", "KinemaSampler.seed=12")
    state = _probe(comfyui)
    assert [m for m in state["loaded"] if m["patcher"] == "ModelPatcher"] == [native], state
    assert [m["listed"] for m in _kinema(state, DIT_FILE) if m["loaded_bytes"] > 0] == [True], state
    print(f"native model after Kinema loaded: {native}")


def test_two_experts_only_the_running_one_holds_blocks(comfyui, tmp_path):
    """Wan2.2 A14B, each expert keeping 1 block: after the run both are the manager's models, and only the
    expert that ran last (low noise) has blocks on the device; it got them back by a copy, not a reload."""
    # 4 steps at shift 12: model times ~1000, 973, 923 (high noise, >= 875) then 800 (low noise)
    _run_kinema(comfyui, tmp_path, "DiT high noise.blocks_on_device=1", "DiT low noise.blocks_on_device=1",
                "KinemaSampler.steps=4", workflow="wan22_t2v_a14b")
    state = _probe(comfyui)
    high, low = (_kinema(state, f"wan2.2_t2v_{kind}_noise_14B_fp8_scaled.safetensors") for kind in ("high", "low"))
    print(f"after an A14B run: high {high}, low {low}")
    assert len(high) == len(low) == 1, state  # one model per file: switching never loads a file again
    (high,), (low,) = high, low
    assert high["listed"] and low["listed"], state
    assert high["block_bytes"] == 0 and low["block_bytes"] > 0, state
    assert low["block_onloads"] >= 2, state  # set-up, then back after the high-noise expert's turn


@pytest.mark.parametrize("flag, plan", [("--lowvram", "1 of 1 blocks on cpu, none streamed"),
                                        ("--novram", "0 of 1 blocks on cpu, 1 streamed from the memory-mapped file")])
def test_runs_under_low_and_no_vram(tmp_path_factory, tmp_path, models, flag, plan):
    base = _base(tmp_path_factory, flag.strip("-"), models)
    with running_comfyui(base, [flag]) as url:
        server = {"url": url, "base": base, "log": base / "comfyui.log"}
        _run_kinema(server, tmp_path)
        log = server["log"].read_text()
        assert plan in log, log[-4000:]
        (dit,) = _kinema(_probe(server), DIT_FILE)
        assert dit["listed"], dit


MANAGER_SCRIPT = """
import importlib, importlib.util, sys, torch
from comfy.cli_args import args
args.cpu, args.reserve_vram = True, 2.0  # read when comfy.model_management is imported
import folder_paths, comfy.model_management as mm, comfy.utils
spec = importlib.util.spec_from_file_location("kinema_pack", sys.argv[1] + "/__init__.py",
                                              submodule_search_locations=[sys.argv[1]])
pack = importlib.util.module_from_spec(spec)
sys.modules["kinema_pack"] = pack
spec.loader.exec_module(pack)
host = importlib.import_module("kinema_pack.nodes.host")
memory = importlib.import_module("kinema_pack.nodes.memory")
dit_module = importlib.import_module("kinema_pack.core.dit")
streaming = importlib.import_module("kinema_pack.core.dit.streaming")
cpu = torch.device("cpu")

facts = host.device_memory()
assert (facts.mode, facts.reserved_bytes) == ("normal", 2 * 2**30), facts  # --reserve-vram reaches the budget

dit = dit_module.load_dit(sys.argv[2])
streaming.stream_blocks(dit, streaming.BlockStreaming(blocks_on_device=1, storage="mmap"), cpu)
memory.manage_dit(dit, "tiny")
patcher = dit.__dict__["_kinema_memory"]
listed = lambda: any(m.model is patcher for m in mm.current_loaded_models)
inputs = torch.load(sys.argv[3])
with torch.inference_mode():
    reference = dit(**inputs)
loaded = patcher.loaded_size()  # other parts + the kept block (the size adds the in-flight block buffers)
assert listed() and 0 < loaded < patcher.model_size(), (listed(), loaded, patcher.model_size())

# ask for 1 byte more than is free: the manager takes it from our model (ModelPatcher.partially_unload)
mm.free_memory(mm.get_free_memory(cpu) + 1, cpu)
streamer = streaming.streamer_of(dit)
assert listed() and patcher.loaded_size() == 0 and streamer.device_bytes() == 0, patcher.loaded_size()
with torch.inference_mode():
    again = dit(**inputs)  # the forward hook asks the manager to load it back
assert patcher.loaded_size() == loaded and torch.equal(again, reference)

mm.unload_all_models()  # what POST /free does
assert not listed() and patcher.loaded_size() == 0 and streamer.device_bytes() == 0
print("partial unload, reload and unload-all: ok", loaded)
"""


def test_real_manager_takes_memory_back_partially_and_reloads(tmp_path):
    """In-process, ComfyUI's own model manager: --reserve-vram reaches the budget; when it needs memory it
    takes it from the Kinema DiT (partial unload: nothing of it left on the device, still listed); the next
    forward loads it back through the manager with the same output; unload_all_models drops it."""
    model = make_tiny_diffusers_dit("t2v", num_layers=3)
    path = save_tiny_dit(tmp_path / "dit", "comfy", "t2v", model=model)
    inputs = {k: v for k, v in tiny_inputs(model).items() if v is not None}
    torch.save(inputs, tmp_path / "inputs.pt")
    checkout = os.environ["KINEMA_COMFYUI"]
    python = os.environ.get("KINEMA_COMFYUI_PYTHON", sys.executable)
    done = subprocess.run([python, "-c", MANAGER_SCRIPT, str(REPO), str(path), str(tmp_path / "inputs.pt")],
                          cwd=checkout, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": checkout},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "partial unload, reload and unload-all: ok" in done.stdout, done.stdout
