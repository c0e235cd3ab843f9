"""KinemaDiTLoader offers GGUF files from diffusion_models (and the legacy unet folder), standalone and
inside ComfyUI (whose folder_paths does not list .gguf for that folder), and loads them."""
from __future__ import annotations

import sys
import types

import torch

from kinema.nodes import host
from kinema.nodes.loaders import KinemaDiTLoader
from tiny_dit import make_tiny_diffusers_dit, official_state_dict
from tiny_gguf import write_comfy_gguf


def test_standalone_lists_and_loads_gguf(tmp_path):
    (tmp_path / "diffusion_models" / "wan").mkdir(parents=True)
    (tmp_path / "unet").mkdir()
    (tmp_path / "diffusion_models" / "other.safetensors").write_bytes(b"")
    (tmp_path / "unet" / "legacy.GGUF").write_bytes(b"")
    write_comfy_gguf(tmp_path / "diffusion_models" / "wan" / "tiny-Q8_0.gguf",
                     official_state_dict(make_tiny_diffusers_dit("t2v")), "Q8_0")
    host.configure(models=[tmp_path])
    try:
        names = KinemaDiTLoader.INPUT_TYPES()["required"]["model_name"][0]
        assert names == ["legacy.GGUF", "other.safetensors", "wan/tiny-Q8_0.gguf"]
        assert host.model_files("vae") == []  # other folders: checkpoint types only
        dit, _ = KinemaDiTLoader().load("wan/tiny-Q8_0.gguf", "default", "sdpa", blocks_on_device=-1)
    finally:
        host.configure()
    model = getattr(dit.model, "module", dit.model)
    assert model.blocks[0].ffn[0].quant.name == "Q8_0"


def test_inside_comfyui_gguf_files_are_added_to_the_list(tmp_path, monkeypatch):
    folder = tmp_path / "diffusion_models"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.safetensors").write_bytes(b"")
    (folder / "sub" / "b.gguf").write_bytes(b"")
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.folder_names_and_paths = {"diffusion_models": ([str(folder)], {".safetensors"})}
    folder_paths.get_filename_list = lambda name: ["a.safetensors"]  # ComfyUI filters by the folder's types
    folder_paths.get_folder_paths = lambda name: [str(folder)]
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setitem(sys.modules, "comfy.model_management", types.ModuleType("comfy.model_management"))
    assert host.in_comfyui()
    assert host.model_files("diffusion_models", extra_extensions=(".gguf",)) == ["a.safetensors", "sub/b.gguf"]
    assert host.model_files("diffusion_models") == ["a.safetensors"]
