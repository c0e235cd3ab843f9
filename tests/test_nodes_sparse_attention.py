"""KinemaDiTLoader's sparse3d attention choice: the loaded DiT runs kernels.sparse3d's SparseSchedule with the
node's dense steps and layers (tests/test_sparse3d_dit.py checks the schedule against a dense masked reference)."""
from __future__ import annotations

import pytest
import torch

from kinema.core.dit import load_dit
from kinema.kernels.sparse3d import SparseSchedule
from kinema.nodes import host
from kinema.nodes.loaders import KinemaDiTLoader
from tiny_model_folders import model_root  # noqa: F401  (fixture)

T2V = "wan2.1_t2v_1.3B_fp16.safetensors"


@pytest.fixture(scope="module")
def inputs(model_root):  # noqa: F811
    host.configure(models=[model_root])
    generator = torch.Generator().manual_seed(0)
    # 2 x 4 x 64 latent -> 2 x 2 x 32 tokens: wider than the default window (3 tiles of 8), so sparse != dense
    x = torch.randn(1, 16, 2, 4, 64, generator=generator)
    context = [torch.randn(7, load_dit(model_root / "diffusion_models" / T2V).config.text_dim, generator=generator)]
    yield x, context
    host.configure()


def _velocity(dit, x, context, t: float):
    with torch.no_grad():
        return dit(x, torch.tensor([t]), context)


def test_sparse3d_choice_runs_the_schedule(model_root, inputs):  # noqa: F811
    x, context = inputs
    sparse = KinemaDiTLoader().load(T2V, "fp32", "sparse3d", sparse_dense_from_t=900.0, sparse_dense_layers=0)[0]
    dense = KinemaDiTLoader().load(T2V, "fp32", "sdpa")[0]
    expected = load_dit(model_root / "diffusion_models" / T2V, dtype=torch.float32)
    expected.set_attention_policy(SparseSchedule(dense_from_timestep=900.0))
    late = _velocity(sparse.model, x, context, 500.0)
    torch.testing.assert_close(late, _velocity(expected, x, context, 500.0))
    assert not torch.allclose(late, _velocity(dense.model, x, context, 500.0)), "sparse3d attended everywhere"
    # the noisy steps (t >= 900) and the dense layers run dense attention
    torch.testing.assert_close(_velocity(sparse.model, x, context, 950.0), _velocity(dense.model, x, context, 950.0))
    # the tiny DiT has one block: one dense layer is the whole model
    all_dense = KinemaDiTLoader().load(T2V, "fp32", "sparse3d", sparse_dense_from_t=900.0, sparse_dense_layers=1)[0]
    torch.testing.assert_close(_velocity(all_dense.model, x, context, 500.0), _velocity(dense.model, x, context, 500.0))
