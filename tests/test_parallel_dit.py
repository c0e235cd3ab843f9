"""Sequence-parallel DiT calls (Ulysses, ring) on 2-4 CPU processes (gloo) against the same model run whole
in one process: tiny random Wan models of every kind, sequences that do and do not divide by the ranks."""
from __future__ import annotations

from pathlib import Path

import pytest

from parallel_cases import dit_and_text_cases, dit_cases
from parallel_world import HEAVY, run_world
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs

HEADS, HEAD_DIM = 4, 16
DEMO_UMT5 = str(Path(__file__).resolve().parents[1] / "demo_model" / "text_encoders" / "kinema_demo_umt5.safetensors")
BOUND = 1e-5


def _models(tmp_path, variants):
    out = {}
    for variant in variants:
        model = make_tiny_diffusers_dit(variant, num_heads=HEADS, head_dim=HEAD_DIM)
        out[variant] = (save_tiny_dit(tmp_path / variant, "official", variant, model=model), model)
    return out


def _case(models, variant, plan, sparse=False, **shape):
    path, model = models[variant]
    inputs = tiny_inputs(model, **shape)
    return (f"{variant} {plan}{' sparse3d' if sparse else ''} {shape}", str(path), inputs, plan, sparse)


def _check(results):
    for rank, errors in enumerate(results):
        for name, error in errors.items():
            assert error <= BOUND, f"rank {rank}: {name}: relative error {error:.2e} > {BOUND}"
    print({name: f"{e:.1e}" for name, e in results[0].items()})


def test_two_ranks_ulysses_and_ring(tmp_path):
    """P = 2: t2v with 45 tokens (uneven) and 24 (even), batch 1 and 2, TI2V per-token t, I2V with CLIP,
    VACE, Animate (3 frames over 2 ranks), sparse3d self-attention; ring on the uneven t2v call; text
    encoded once, on rank 0."""
    variants = ("t2v", "ti2v", "i2v_clip", "vace", "animate") if HEAVY else ("t2v", "ti2v", "vace", "animate")
    models = _models(tmp_path, variants)
    cases = [
        _case(models, "t2v", "ulysses=2"),  # 3 x 3 x 5 = 45 tokens: 23 + 22
        _case(models, "t2v", "ulysses=2", batch=2, height=4, width=8),  # 24 tokens: 12 + 12
        _case(models, "ti2v", "ulysses=2", per_token_t=True),
        _case(models, "vace", "ulysses=2", batch=2 if HEAVY else 1),
        _case(models, "animate", "ulysses=2"),
        _case(models, "t2v", "ring=2", batch=2),
        _case(models, "ti2v", "ring=2", per_token_t=True),
        _case(models, "t2v", "ulysses=2", sparse=True, height=4, width=8),  # each rank sees the whole grid
    ]
    if HEAVY:
        cases += [_case(models, "i2v_clip", "ulysses=2", batch=2), _case(models, "animate", "ring=2", batch=2)]
    results = run_world(dit_and_text_cases, 2, cases, DEMO_UMT5)
    _check([errors for errors, _ in results])
    # The text encoder in the same world: only rank 0 runs it; rank 1, whose own copy is altered (so its rows
    # would differ), gets rank 0's rows.
    (same0, calls0), (same1, calls1) = (text for _, text in results)
    assert same0 and same1, "a rank conditioned on other text than rank 0 encoded"
    assert (calls0, calls1) == (1, 0), f"encoder runs per rank: {calls0}, {calls1}"


@pytest.mark.skipif(not HEAVY, reason="4 processes: KINEMA_HEAVY=1 (the 2-process test covers every model kind)")
def test_four_ranks_ulysses(tmp_path):
    models = _models(tmp_path, ("t2v", "ti2v", "vace", "animate"))
    cases = [
        _case(models, "t2v", "ulysses=4"),  # 45 tokens: 12 + 11 + 11 + 11
        _case(models, "t2v", "ulysses=4", batch=2, height=4, width=8),
        _case(models, "ti2v", "ulysses=4", per_token_t=True),
        _case(models, "vace", "ulysses=4"),
        _case(models, "animate", "ulysses=4", frames=5),  # 5 frames: 2 + 1 + 1 + 1
    ]
    _check(run_world(dit_cases, 4, cases))

