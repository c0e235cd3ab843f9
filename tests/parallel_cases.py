"""What each rank of a test world runs (tests/parallel_world.py). Module-level functions in a helper
module, not a test file: spawned processes import them by name."""
from __future__ import annotations

import torch

from tiny_dit import relative_error


def dit_cases(rank, cases):
    """Every case: the whole model here, then the same call split over the world; errors vs the whole run."""
    from kinema.core.dit import load_dit
    from kinema.core.parallel import ParallelPlan, parallelize, start, unparallelize

    loaded, errors = {}, {}
    for name, path, inputs, plan in cases:
        dit = loaded.setdefault(path, load_dit(path))
        unparallelize(dit)
        kwargs = {k: v for k, v in inputs.items() if v is not None}
        with torch.no_grad():
            whole = dit(**kwargs)
            parallelize(dit, start(ParallelPlan.parse(plan)))
            split = dit(**kwargs)
        errors[name] = relative_error(split, whole)
    return errors


def fsdp_cases(rank, path, inputs):
    """FSDP2 over the world, alone and with Ulysses: (local parameter share, error vs the whole model) each."""
    from kinema.core.dit import load_dit
    from kinema.core.parallel import ParallelPlan, parallelize, start
    from kinema.core.parallel.fsdp import local_parameter_count

    results = {}
    for plan in ("cfg=2,fsdp", "ulysses=2,fsdp"):  # a plain DiT call: both cfg ranks run it whole
        dit = load_dit(path)
        total = local_parameter_count(dit)
        with torch.no_grad():
            whole = dit(**inputs)
            parallelize(dit, start(ParallelPlan.parse(plan)))
            results[plan] = (local_parameter_count(dit) / total, relative_error(dit(**inputs), whole))
    return results
