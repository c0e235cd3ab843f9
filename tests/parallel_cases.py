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
