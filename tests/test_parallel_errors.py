"""Ring attention over 3 processes, and the clear errors of parallel plans that cannot run."""
from __future__ import annotations

import pytest

from parallel_cases import three_rank_cases
from parallel_world import run_world
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs

from kinema.core.parallel import ParallelPlan


def test_three_ranks_ring_and_the_plans_that_cannot_run(tmp_path):
    model = make_tiny_diffusers_dit("t2v", num_heads=4, head_dim=16)
    path = str(save_tiny_dit(tmp_path, "official", "t2v", model=model))
    inputs = {k: v for k, v in tiny_inputs(model, frames=2, height=4, width=10).items() if v is not None}
    results = run_world(three_rank_cases, 3, path, inputs)
    for rank, (error, messages) in enumerate(results):
        assert error <= 1e-5, f"rank {rank}: ring=3 relative error {error:.2e}"
        assert "4 heads" in messages["heads"] and "ring=3" in messages["heads"], messages["heads"]
        assert "needs 2 processes" in messages["world"] and "3 were started" in messages["world"], messages["world"]
        assert "'sage' cannot run ring-parallel" in messages["backend"], messages["backend"]
    print(f"ring=3 error {results[0][0]:.1e}", results[0][1])


def test_plan_parsing():
    plan = ParallelPlan.parse("ulysses=4,cfg=2")
    assert (plan.ulysses, plan.cfg, plan.world_size, plan.mesh_shape) == (4, 2, 8, (1, 2, 4))
    assert ParallelPlan.parse("ring=3,fsdp").describe() == "ring=3,fsdp"
    assert ParallelPlan.parse("").world_size == 1


@pytest.mark.parametrize("text, message", [
    ("ulysses=2,ring=2", "not both"),
    ("cfg=3", "cfg is 1 or 2"),
    ("tensor=2", "not understood"),
    ("ulysses=two", "not understood"),
    ("ulysses=0", ">= 1"),
])
def test_bad_plans_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        ParallelPlan.parse(text)


def test_a_process_group_that_cannot_move_the_models_tensors_is_refused(monkeypatch):
    import torch
    import torch.distributed as dist

    from kinema.core.parallel.run import check_backend

    monkeypatch.setattr(dist, "get_backend", lambda group=None: "nccl")
    with pytest.raises(ValueError, match="backend 'nccl' cannot move cpu tensors.*gloo"):
        check_backend(torch.device("cpu"))
    monkeypatch.setattr(dist, "get_backend", lambda group=None: "cpu:gloo,cuda:nccl")
    check_backend(torch.device("cuda"))
