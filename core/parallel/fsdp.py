"""FSDP2 for the DiT: `fully_shard` on every transformer block (and once on the rest), so each rank
stores 1/N of the weights and gathers one block's weights just before running it."""
from __future__ import annotations

import torch.nn as nn

from .run import ParallelRun


def shard_blocks(dit: nn.Module, run: ParallelRun) -> None:
    from torch.distributed.fsdp import fully_shard

    mesh = run.mesh._flatten("all") if run.mesh.ndim > 1 else run.mesh
    for block in [*dit.blocks, *getattr(dit, "vace_blocks", ())]:
        fully_shard(block, mesh=mesh, reshard_after_forward=True)
    fully_shard(dit, mesh=mesh, reshard_after_forward=True)
