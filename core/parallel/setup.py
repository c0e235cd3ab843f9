"""`parallelize(dit, run)`: make a loaded DiT one rank's part of a parallel run (every rank calls it
with the same model file and settings)."""
from __future__ import annotations

import torch.nn as nn

from .fsdp import shard_blocks
from .ring import check_ring_backend
from .run import ParallelRun
from .sequence import SequenceSplit


def parallelize(dit: nn.Module, run: ParallelRun) -> nn.Module:
    """Split every call's tokens over the run's `sequence` axis (Ulysses or ring) and, with `fsdp`, shard
    each block's weights over all ranks. Returns `dit`, changed in place."""
    plan = run.plan
    dit.sequence_split = None
    if plan.sequence > 1:
        if getattr(dit, "sequence_split", "absent") == "absent":
            raise ValueError(f"{type(dit).__name__} has no sequence-parallel support; only Kinema's Wan DiTs do")
        if plan.sequence_mode == "ring":
            if dit.attention_backend != "auto":
                check_ring_backend(dit.attention_backend)
            if dit.attention_policy is not None:
                raise ValueError("ring-parallel self-attention is dense: an attention policy (sparse3d schedule) "
                                 "needs Ulysses, where each rank attends over the whole sequence")
        dit.sequence_split = SequenceSplit(run.group("sequence"), plan.sequence_mode, dit.config.num_heads)
    if plan.fsdp:
        shard_blocks(dit, run)
    return dit


def unparallelize(dit: nn.Module) -> nn.Module:
    """Back to a whole-sequence model (FSDP sharding, once applied, stays)."""
    dit.sequence_split = None
    return dit
