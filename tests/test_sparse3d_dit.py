"""The DiT's attention-policy hook: per-layer / per-step self-attention, e.g. a sparse3d SparseSchedule."""
from __future__ import annotations

import importlib

import pytest
import torch

from kinema.core.dit import load_dit
from kinema.kernels.attention import AttentionBackend
from kinema.kernels.sparse3d import SparseSchedule, SparseWindow
from kinema.kernels.sparse3d.reference import dense_masked_sparse3d

from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs

# Latent 3x6x10 -> token grid 3x3x5: tiles of 1x2x2, each query tile sees only its own tile + frame 0.
WINDOW = SparseWindow(tile=(1, 2, 2), window=(1, 1, 1), global_frames=1)


@pytest.fixture(scope="module")
def dit_and_inputs(tmp_path_factory):
    model = make_tiny_diffusers_dit("t2v", num_layers=3)
    dit = load_dit(save_tiny_dit(tmp_path_factory.mktemp("dit"), layout="official", variant="t2v", model=model))
    inputs = tiny_inputs(model, batch=2)
    return dit, dict(x=inputs["x"], t=inputs["t"], context=inputs["context"])


@pytest.fixture
def masked_reference(monkeypatch):
    """A throw-away backend running the dense masked reference, to build the expected output independently."""
    run = lambda q, k, v, *, mask=None, grid, window: dense_masked_sparse3d(q, k, v, grid, window)  # noqa: E731
    backend = AttentionBackend("masked_reference", priority=1000, run=run, refuses=lambda call: None)
    registry = importlib.import_module("kinema.kernels.attention")._REGISTRY  # the package re-exports attention()
    monkeypatch.setitem(registry, "masked_reference", backend)
    return "masked_reference"


def _run(dit, inputs, policy):
    dit.set_attention_policy(policy)
    try:
        return dit(inputs["x"], inputs["t"], inputs["context"])
    finally:
        dit.set_attention_policy(None)


def test_schedule_runs_sparse3d_in_the_chosen_layers(dit_and_inputs, masked_reference):
    dit, inputs = dit_and_inputs
    dense = _run(dit, inputs, None)
    ours = _run(dit, inputs, SparseSchedule(WINDOW, dense_layers=(1,)))

    def expected_policy(layer, grid, timestep, dense_backend):
        return (dense_backend, {}) if layer == 1 else (masked_reference, {"grid": grid, "window": WINDOW})

    expected = _run(dit, inputs, expected_policy)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    assert (ours - dense).abs().max() > 1e-3  # the sparse layers really changed the result


def test_schedule_keeps_early_steps_dense(dit_and_inputs):
    dit, inputs = dit_and_inputs  # t = 937.5 and 401: the noisiest sample decides for the call
    dense = _run(dit, inputs, None)
    assert torch.equal(_run(dit, inputs, SparseSchedule(WINDOW, dense_from_timestep=900)), dense)
    assert not torch.equal(_run(dit, inputs, SparseSchedule(WINDOW, dense_from_timestep=950)), dense)


def test_policy_must_be_callable(dit_and_inputs):
    dit, _ = dit_and_inputs
    with pytest.raises(TypeError, match="attention policy must be callable"):
        dit.set_attention_policy("sparse3d")
