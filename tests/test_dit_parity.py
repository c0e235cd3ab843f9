"""Our WanDiT against diffusers' WanTransformer3DModel (the independent reference), for every model
variant and every file layout: tiny random weights, saved in the real layout, loaded with load_dit."""
from __future__ import annotations

import functools

import pytest
import torch

from kinema.core.dit import load_dit

from tiny_dit import LAYOUTS, make_tiny_diffusers_dit, reference_forward, save_tiny_dit, tiny_inputs

# fp32 everywhere; the only differences are summation order and float64 vs float32 sinusoids/RoPE
# tables (measured ~1.5e-6 relative), so 1e-4 leaves room for BLAS changes yet catches any
# wrong weight, norm or modulation term (those give errors of order 1e-1).
REL_TOL = 1e-4


@functools.lru_cache(maxsize=None)
def _case(variant: str):
    """Reference model, inputs (batch 2, different t and prompt lengths, odd latent grid) and its output."""
    model = make_tiny_diffusers_dit(variant)
    inputs = tiny_inputs(model, batch=2, frames=3, height=6, width=10, per_token_t=variant == "ti2v")
    return model, inputs, reference_forward(model, inputs)


def _assert_close(out: torch.Tensor, ref: torch.Tensor, tol: float = REL_TOL) -> None:
    assert out.dtype == torch.float32 and out.shape == ref.shape
    err = (out - ref).abs().max().item()
    assert err <= tol * ref.abs().max().item(), f"max |ours - diffusers| = {err:.3g}, max |ref| = {ref.abs().max():.3g}"


def _run(dit, inputs) -> torch.Tensor:
    return dit(inputs["x"], inputs["t"], inputs["context"], y=inputs["y"], clip_fea=inputs["clip_fea"])


# Key sets: flf2v ⊃ i2v_clip ⊃ t2v (img_emb, k_img/v_img, emb_pos); i2v and ti2v differ from t2v
# only in channel counts and per-token t. So every layout runs t2v and flf2v, and the other
# variants run in one layout of each family (official names, ComfyUI prefix, diffusers).
CASES = [(layout, variant) for variant in ("t2v", "flf2v") for layout in LAYOUTS] + [
    (layout, variant) for variant in ("i2v", "ti2v", "i2v_clip") for layout in ("pth", "comfy_prefixed", "diffusers")
]


@pytest.mark.parametrize("layout,variant", CASES)
def test_matches_diffusers_in_every_layout(tmp_path, layout, variant):
    model, inputs, ref = _case(variant)
    dit = load_dit(save_tiny_dit(tmp_path, layout, variant, model=model))
    assert dit.config.in_dim == model.config.in_channels and dit.config.num_heads == 2
    assert dit.config.has_image_branch == (model.config.image_dim is not None)
    _assert_close(_run(dit, inputs), ref)


def test_ti2v_per_token_t_is_really_per_token(tmp_path):
    """Zeroing frame 0's timesteps must change the output (guards against ignoring [B, L] t)."""
    model, inputs, ref = _case("ti2v")
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "ti2v", model=model))
    constant = dict(inputs, t=inputs["t"][:, -1])  # [B]: every token at the noisy-frame timestep
    out_constant = _run(dit, constant)
    _assert_close(out_constant, reference_forward(model, constant))
    assert (out_constant - ref).abs().max() > 1e-2 * ref.abs().max()


def test_head_dim_other_than_128_from_config_or_argument(tmp_path):
    """Tiny widths that are not 128 x heads: heads come from config.json or num_heads= (see config.py)."""
    model = make_tiny_diffusers_dit("t2v", num_heads=2, head_dim=24)  # dim 48
    inputs = tiny_inputs(model, batch=1)
    ref = reference_forward(model, inputs)
    for layout in ("diffusers", "official"):  # config.json beside the weights
        dit = load_dit(save_tiny_dit(tmp_path / layout, layout, "t2v", model=model))
        assert (dit.config.num_heads, dit.config.head_dim) == (2, 24)
        _assert_close(_run(dit, inputs), ref)
    dit = load_dit(save_tiny_dit(tmp_path / "comfy", "comfy", "t2v", model=model), num_heads=2)
    _assert_close(_run(dit, inputs), ref)


def test_attention_backend_is_switchable(tmp_path):
    model, inputs, ref = _case("t2v")
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "t2v", model=model), attention="auto")
    assert dit.attention_backend == "auto"
    dit.set_attention("sdpa")
    _assert_close(_run(dit, inputs), ref)
