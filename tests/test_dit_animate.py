"""Wan2.2 Animate: our WanAnimate against diffusers' WanAnimateTransformer3DModel (the independent
reference) on a tiny random model (16 px faces, 2 residual blocks in the motion encoder) saved in
the official (with the blur buffers official files carry), ComfyUI (prefixed) and diffusers layouts;
the released size; errors."""
from __future__ import annotations

import functools

import pytest
import torch

from kinema.core.dit import DiTConfig, WanAnimate, load_dit
from kinema.core.dit.animate_config import AnimateConfig
from kinema.core.dit.config import infer_config

from tiny_dit import FACE_SIZE, make_tiny_diffusers_dit, reference_forward, save_tiny_dit, tiny_inputs, relative_error

REL_TOL = 1e-4  # fp32; measured ~1e-6


@functools.lru_cache(maxsize=None)
def _case():
    model = make_tiny_diffusers_dit("animate")
    inputs = tiny_inputs(model, batch=2, frames=3, height=6, width=10)
    return model, inputs, reference_forward(model, inputs)




@pytest.mark.parametrize("layout", ["official", "comfy_prefixed", "diffusers"])
def test_matches_diffusers_in_every_layout(tmp_path, layout):
    model, inputs, ref = _case()
    dit = load_dit(save_tiny_dit(tmp_path, layout, "animate", model=model))
    a = dit.config.animate
    assert isinstance(dit, WanAnimate) and dit.config.has_image_branch and dit.config.in_dim == 36
    assert (a.face_size, a.face_every, a.motion_channels, a.face_heads) == (FACE_SIZE, 2, (8, 12, 16), 2)
    assert relative_error(dit(**inputs), ref) <= REL_TOL


def test_pose_and_face_matter(tmp_path):
    """Each driving input changes the output, so parity is not blind to a dropped branch; the
    official unconditional face (all -1) also matches diffusers."""
    model, inputs, ref = _case()
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "animate", model=model))
    no_face = dict(inputs, face_pixels=torch.full_like(inputs["face_pixels"], -1.0))
    out = dit(**no_face)
    assert relative_error(out, ref) > 1e-2
    assert relative_error(out, reference_forward(model, no_face)) <= REL_TOL
    assert relative_error(dit(**dict(inputs, pose_latents=torch.zeros_like(inputs["pose_latents"]))), ref) > 1e-2


def test_released_size_and_preset():
    """Animate-14B: 17,274,817,108 values in the official file (Wan spec 10.4) = our parameters plus
    the 7 residual blocks' two 4x4 blur buffers, which we do not store."""
    a = AnimateConfig(motion_channels=(32, 64, 128, 256, 512, 512, 512, 512), style_dim=512, motion_layers=5,
                      motion_dim=20, motion_out_dim=512, final_kernel=4, face_hidden_dim=1024, face_heads=4,
                      face_every=5, pose_dim=16)
    assert a.face_size == 512
    with torch.device("meta"):
        model = WanAnimate(DiTConfig(5120, 13824, 40, 40, 36, 16, image_dim=1280, animate=a))
    state = model.state_dict()
    assert sum(t.numel() for t in state.values()) + 7 * 2 * 16 == 17_274_817_108
    config = infer_config(state, "test")
    assert config.preset == "wan2.2-animate-14B" and config.animate == a


def test_bad_call_arguments(tmp_path):
    model, inputs, _ = _case()
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "animate", model=model))
    with pytest.raises(ValueError, match="pass pose_latents"):
        dit(**{k: v for k, v in inputs.items() if k != "face_pixels"})
    with pytest.raises(ValueError, match="one latent frame fewer"):
        dit(**dict(inputs, pose_latents=inputs["pose_latents"][:, :, :0]))
    with pytest.raises(ValueError, match="pass 5 face frames"):
        dit(**dict(inputs, face_pixels=inputs["face_pixels"][:, :, :1]))
    with pytest.raises(ValueError, match=f"takes {FACE_SIZE} x {FACE_SIZE}"):
        dit(**dict(inputs, face_pixels=inputs["face_pixels"][..., :8, :8]))
