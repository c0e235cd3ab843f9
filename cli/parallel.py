"""`kinema run --parallel PLAN` under torchrun: join the process group, make the run the one sampling
joins, and give every rank but 0 a throw-away output folder."""
from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional


@dataclass(frozen=True)
class Rank:
    output: Optional[str]  # None on rank 0 (the user's output folder); a private temporary folder elsewhere


@contextmanager
def parallel_run(plan_text: str) -> Iterator[Rank]:
    import torch.distributed as dist

    from ..core.parallel import ParallelPlan, activate, start

    run = start(ParallelPlan.parse(plan_text))
    scratch = None if run.is_driver else tempfile.mkdtemp(prefix=f"kinema-rank{run.rank}-")
    activate(run)
    try:
        yield Rank(scratch)
    finally:
        activate(None)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        dist.destroy_process_group()
