"""KinemaAnimateConditioning / KinemaVACEConditioning on tiny random checkpoints: the branch they
build has the DiT's input shapes, samples through core.sampling.sample(branch=...) and
leaves the clip's frames after its reference frames are dropped."""
from __future__ import annotations

import torch

from kinema.core.dit import load_dit
from kinema.core.sampling import SamplerSettings, sample
from kinema.core.vae import load_vae
from kinema.nodes.conditioning_pose import KinemaAnimateConditioning, KinemaVACEConditioning
from kinema.nodes.types import DiTModel, VAEModel

from tiny_dit import TEXT_DIM, save_tiny_dit
from tiny_vae import save_tiny_vae

FRAMES, HEIGHT, WIDTH = 5, 32, 48


def _sample(dit, branch):
    """What KinemaSampler does with a branch: its shape, its inputs, the reference frames dropped."""
    settings = SamplerSettings(steps=1, cfg=1.0, solver="euler")
    context = [torch.randn(4, TEXT_DIM, generator=torch.Generator().manual_seed(0))]
    return sample(dit, context, settings=settings, branch=branch)


def _images(n, h, w, seed):
    return torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(seed))


def test_animate_conditioning_node(tmp_path, caplog):
    dit = load_dit(save_tiny_dit(tmp_path / "dit", "comfy", "animate"))
    vae = load_vae(save_tiny_vae(tmp_path / "vae", "2.1", "comfy"))
    node = KinemaAnimateConditioning()
    (branch,) = node.build(DiTModel(dit, "animate"), VAEModel(vae, "vae"), _images(1, 40, 30, 0),
                           _images(3, 64, 96, 1), _images(3, 24, 24, 2), WIDTH, HEIGHT, FRAMES)
    assert "zero CLIP features" in caplog.text
    assert branch.kind == "animate" and branch.latent_shape == (1, 16, 1 + 2, HEIGHT // 8, WIDTH // 8)
    assert branch.inputs["face_pixels"].shape == (1, 3, FRAMES, 16, 16)
    out = _sample(dit, branch)
    assert out.shape == (1, 16, 2, HEIGHT // 8, WIDTH // 8) and torch.isfinite(out).all()


def test_vace_conditioning_node(tmp_path):
    dit = load_dit(save_tiny_dit(tmp_path / "dit", "comfy", "vace"))
    vae = load_vae(save_tiny_vae(tmp_path / "vae", "2.1", "comfy"))
    (branch,) = KinemaVACEConditioning().build(VAEModel(vae, "vae"), WIDTH, HEIGHT, FRAMES, 0.8,
                                               control_video=_images(FRAMES, HEIGHT, WIDTH, 3),
                                               reference_image=_images(1, 20, 20, 4))
    assert branch.kind == "vace" and branch.reference_frames == 1
    assert branch.latent_shape == (1, 16, 1 + 2, HEIGHT // 8, WIDTH // 8)
    assert branch.inputs["vace_context"].shape[1] == 96 and branch.inputs["vace_strength"] == 0.8
    out = _sample(dit, branch)
    assert out.shape == (1, 16, 2, HEIGHT // 8, WIDTH // 8) and torch.isfinite(out).all()


def test_animate_node_refuses_other_models(tmp_path):
    import pytest

    dit = load_dit(save_tiny_dit(tmp_path / "dit", "comfy", "t2v"))
    with pytest.raises(ValueError, match="not a Wan2.2 Animate model"):
        KinemaAnimateConditioning().build(DiTModel(dit, "t2v.safetensors"), VAEModel(None, "vae"),
                                          _images(1, 8, 8, 0), _images(1, 8, 8, 0), _images(1, 8, 8, 0), 16, 16, 5)
