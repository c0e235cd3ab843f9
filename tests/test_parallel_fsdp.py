"""FSDP2 (fully_shard per block) on 2 CPU processes: each rank stores about half the weights and the output
matches the whole model in one process, alone and composed with Ulysses."""
from __future__ import annotations

from parallel_cases import fsdp_cases
from parallel_world import run_world
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs


def test_fsdp_halves_the_weights_and_keeps_the_output(tmp_path):
    model = make_tiny_diffusers_dit("t2v", num_heads=4, head_dim=16)
    path = str(save_tiny_dit(tmp_path, "official", "t2v", model=model))
    inputs = {k: v for k, v in tiny_inputs(model, batch=2).items() if v is not None}
    results = run_world(fsdp_cases, 2, path, inputs)
    print(results[0])
    for rank, cases in enumerate(results):
        for plan, (share, error) in cases.items():
            assert 0.45 <= share <= 0.55, f"rank {rank} {plan}: holds {share:.0%} of the parameters"
            assert error <= 1e-5, f"rank {rank} {plan}: relative error {error:.2e}"
