"""Wan2.1 VACE: our WanVACE against diffusers' WanVACETransformer3DModel (the independent reference)
on a tiny random model saved in the official, ComfyUI (prefixed) and diffusers layouts; the
released sizes; which main blocks take the hints; errors."""
from __future__ import annotations

import functools

import pytest
import torch
from safetensors.torch import load_file, save_file

from kinema.core.checkpoints import CheckpointError
from kinema.core.dit import DiTConfig, WanVACE, load_dit
from kinema.core.dit.config import infer_config

from tiny_dit import make_tiny_diffusers_dit, reference_forward, save_tiny_dit, tiny_inputs, relative_error

REL_TOL = 1e-4  # fp32; measured ~1e-6 (summation order, float64 sinusoid/RoPE tables)


@functools.lru_cache(maxsize=None)
def _case():
    model = make_tiny_diffusers_dit("vace")
    inputs = tiny_inputs(model, batch=2, frames=3, height=6, width=10)
    return model, inputs, reference_forward(model, inputs)




@pytest.mark.parametrize("layout", ["official", "comfy_prefixed", "diffusers"])
def test_matches_diffusers_in_every_layout(tmp_path, layout):
    """diffusers runs every control block before the main stack; we interleave them (same numbers)."""
    model, inputs, ref = _case()
    dit = load_dit(save_tiny_dit(tmp_path, layout, "vace", model=model))
    assert isinstance(dit, WanVACE) and dit.config.vace_layers == (0, 2) and dit.config.vace_in_dim == 96
    assert relative_error(dit(**inputs), ref) <= REL_TOL


def test_control_matters_and_strength_per_block(tmp_path):
    """The hints change the output (so parity is not blind to them); per-block strengths match diffusers'."""
    model, inputs, ref = _case()
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "vace", model=model))
    other = dict(inputs, vace_context=torch.zeros_like(inputs["vace_context"]))
    assert relative_error(dit(**other), ref) > 1e-2
    strengths = dict(inputs, vace_strength=[0.5, 1.5])
    assert relative_error(dit(**strengths), reference_forward(model, strengths)) <= REL_TOL


def test_hinted_layers_come_from_config_json(tmp_path):
    """Not evenly spaced (blocks 0 and 1 of 4): only config.json can say so, and it is read."""
    model = make_tiny_diffusers_dit("vace")
    model.register_to_config(vace_layers=[0, 1])
    inputs = tiny_inputs(model, batch=1)
    for layout in ("diffusers", "official"):
        dit = load_dit(save_tiny_dit(tmp_path / layout, layout, "vace", model=model))
        assert dit.config.vace_layers == (0, 1)
        assert relative_error(dit(**inputs), reference_forward(model, inputs)) <= REL_TOL


def _meta_vace(dim, ffn, layers, step) -> WanVACE:
    with torch.device("meta"):
        return WanVACE(DiTConfig(dim, ffn, layers, dim // 128, 16, 16, vace_layers=tuple(range(0, layers, step)),
                                 vace_in_dim=96))


@pytest.mark.parametrize("name,dim,ffn,layers,step,params", [
    ("wan2.1-vace-1.3B", 1536, 8960, 30, 2, 2_153_972_032),
    ("wan-vace-14B", 5120, 13824, 40, 5, 17_337_592_896),
])
def test_released_sizes_and_presets(name, dim, ffn, layers, step, params):
    """Parameter totals of the released files (Wan spec 2.10); shapes alone name the preset and spacing."""
    state = _meta_vace(dim, ffn, layers, step).state_dict()
    assert sum(t.numel() for t in state.values()) == params
    config = infer_config(state, "test")
    assert config.preset == name and config.vace_layers == tuple(range(0, layers, step))


def test_uneven_blocks_without_config_is_an_error(tmp_path):
    path = save_tiny_dit(tmp_path, "comfy", "vace")
    tensors = load_file(str(path))
    tensors.update({k.replace("vace_blocks.1.", "vace_blocks.2."): v.clone() for k, v in tensors.items()
                    if k.startswith("vace_blocks.1.")})  # 3 VACE blocks for 4 layers
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match="cannot be spaced evenly.*config.json"):
        load_dit(path)


def test_bad_call_arguments(tmp_path):
    model, inputs, _ = _case()
    dit = load_dit(save_tiny_dit(tmp_path / "vace", "comfy", "vace", model=model))
    without = {k: v for k, v in inputs.items() if k != "vace_context"}
    with pytest.raises(ValueError, match="pass vace_context"):
        dit(**without)
    with pytest.raises(ValueError, match="same frames and size"):
        dit(**dict(inputs, vace_context=inputs["vace_context"][:, :, :2]))
    with pytest.raises(ValueError, match="one per block"):
        dit(**dict(inputs, vace_strength=[1.0, 1.0, 1.0]))
    t2v = load_dit(save_tiny_dit(tmp_path / "t2v", "comfy", "t2v"))
    with pytest.raises(ValueError, match="takes no vace_context"):
        t2v(inputs["x"], inputs["t"], inputs["context"], vace_context=inputs["vace_context"])
