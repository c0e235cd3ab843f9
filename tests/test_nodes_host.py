"""nodes/host.py standalone (plain folders, tqdm) and wired to ComfyUI's services (here: small
stand-ins of folder_paths, comfy.utils and comfy.model_management with ComfyUI's signatures)."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from kinema.core.progress import Progress
from kinema.nodes import host


@pytest.fixture
def folders(tmp_path):
    host.configure(models=[tmp_path / "a", tmp_path / "b"], output=tmp_path / "out")
    yield tmp_path
    host.configure()


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_model_files_across_roots_legacy_folders_and_subfolders(folders):
    _touch(folders / "a" / "diffusion_models" / "one.safetensors")
    _touch(folders / "b" / "unet" / "wan" / "two.sft")  # ComfyUI's legacy name for diffusion_models
    _touch(folders / "a" / "diffusion_models" / "notes.txt")
    assert host.model_files("diffusion_models") == ["one.safetensors", "wan/two.sft"]
    assert host.model_path("diffusion_models", "wan/two.sft") == str(folders / "b" / "unet" / "wan" / "two.sft")


def test_missing_model_names_the_folders_and_the_fix(folders):
    with pytest.raises(FileNotFoundError) as error:
        host.model_path("vae", "wan_2.1_vae.safetensors")
    message = str(error.value)
    assert "'wan_2.1_vae.safetensors' not found in the 'vae' folders" in message
    assert str(folders / "a" / "vae") in message and "--models" in message


def test_output_files_count_up_and_never_overwrite(folders):
    first = host.new_output_file("kinema/clip", "mp4")
    assert first.path == folders / "out" / "kinema" / "clip_00001_.mp4"
    assert first.ui() == {"filename": "clip_00001_.mp4", "subfolder": "kinema", "type": "output"}
    _touch(first.path)
    _touch(folders / "out" / "kinema" / "clip_00007_.mp4")  # counting continues after the highest
    assert host.new_output_file("kinema/clip", "mp4").filename == "clip_00008_.mp4"
    assert host.new_output_file("clip", "mp4").subfolder == ""


def test_output_prefix_may_not_leave_the_output_folder(folders):
    with pytest.raises(ValueError, match="outside the output folder"):
        host.new_output_file("../escape", "mp4")


def test_standalone_progress_is_a_tqdm_bar_without_cancel(folders):
    assert not host.in_comfyui()
    with host.progress("test", 3) as progress:
        assert isinstance(progress, Progress) and progress.check_cancel is None
        progress.step(1, 3)


class Interrupted(Exception):
    pass


@pytest.fixture
def fake_comfyui(tmp_path, monkeypatch):
    """Stand-ins with the signatures of ComfyUI's folder_paths / comfy.utils / comfy.model_management."""
    state = {"updates": [], "interrupt_after": None, "unloaded": 0, "freed": []}
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_filename_list = lambda folder: ["tiny.safetensors"]
    folder_paths.get_full_path = lambda folder, name: str(tmp_path / folder / name) if name == "tiny.safetensors" else None
    folder_paths.get_folder_paths = lambda folder: [str(tmp_path / folder)]
    folder_paths.get_output_directory = lambda: str(tmp_path / "comfy_output")
    folder_paths.models_dir = str(tmp_path / "comfy_models")
    folder_paths.supported_pt_extensions = {".safetensors", ".pt"}
    folder_paths.folder_names_and_paths = {"diffusion_models": ([str(tmp_path / "diffusion_models")], {".safetensors"})}

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            state["updates"].append((value, total))

    def throw_exception_if_processing_interrupted():
        if state["interrupt_after"] is not None and len(state["updates"]) >= state["interrupt_after"]:
            raise Interrupted()

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    management = types.ModuleType("comfy.model_management")
    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    management.get_torch_device = lambda: torch.device("cpu")
    management.unload_all_models = lambda: state.__setitem__("unloaded", state["unloaded"] + 1)
    management.free_memory = lambda memory_required, device, keep_loaded=[]: state["freed"].append(
        (memory_required, device))
    management.get_free_memory = lambda device=None, torch_free_too=False: 5 * 2**30
    management.extra_reserved_memory = lambda: 2**30
    management.vram_state = types.SimpleNamespace(name="DISABLED")  # what --cpu gives
    management.soft_empty_cache = lambda: None
    cli_args = types.ModuleType("comfy.cli_args")
    cli_args.args = types.SimpleNamespace(lowvram=False, novram=False)
    state["args"] = cli_args.args
    formats = types.ModuleType("comfy.latent_formats")  # no Wan formats: progress without previews
    for name, module in {"folder_paths": folder_paths, "comfy": comfy, "comfy.utils": utils,
                         "comfy.model_management": management, "comfy.latent_formats": formats,
                         "comfy.cli_args": cli_args}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return state


def test_inside_comfyui_folders_come_from_folder_paths(fake_comfyui, tmp_path):
    assert host.in_comfyui()
    assert host.model_files("diffusion_models") == ["tiny.safetensors"]
    with pytest.raises(FileNotFoundError, match="put it in one of them"):
        host.model_path("diffusion_models", "other.safetensors")
    assert host.new_output_file("v", "mp4").path == tmp_path / "comfy_output" / "v_00001_.mp4"


def test_inside_comfyui_room_is_asked_for_not_every_model_unloaded(fake_comfyui):
    """Loading asks the manager for the bytes needed plus --reserve-vram; it never unloads every model."""
    host.make_room(3 * 2**30)
    assert fake_comfyui["freed"] == [(4 * 2**30, torch.device("cpu"))] and fake_comfyui["unloaded"] == 0


@pytest.mark.parametrize("flags, mode", [({}, "normal"), ({"lowvram": True}, "lowvram"),
                                         ({"novram": True}, "novram")])
def test_inside_comfyui_device_memory_is_comfyuis_estimate_and_vram_flags(fake_comfyui, flags, mode):
    for name, value in flags.items():
        setattr(fake_comfyui["args"], name, value)
    memory = host.device_memory()
    assert memory == host.DeviceMemory(torch.device("cpu"), mode, 5 * 2**30, 2**30)


def test_inside_comfyui_a_folder_it_lacks_is_added_under_its_models_dir(fake_comfyui, tmp_path):
    import folder_paths

    host.model_files("latent_upscale_models")
    assert folder_paths.folder_names_and_paths["latent_upscale_models"] == (
        [str(tmp_path / "comfy_models" / "latent_upscale_models")], {".safetensors", ".pt"})
    assert folder_paths.folder_names_and_paths["diffusion_models"][0] == [str(tmp_path / "diffusion_models")]


def test_inside_comfyui_progress_drives_the_bar_and_stops_on_interrupt(fake_comfyui):
    fake_comfyui["interrupt_after"] = 2
    done = []
    with pytest.raises(Interrupted):
        with host.progress("loop", 5) as progress:
            for step in range(1, 6):
                progress.step(step, 5, torch.zeros(1, 16, 1, 2, 2))
                done.append(step)
    assert done == [1, 2] and fake_comfyui["updates"] == [(1, 5), (2, 5)]
