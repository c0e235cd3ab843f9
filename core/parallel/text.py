"""Text encoded once per parallel run: rank 0 runs the text encoder, every other rank receives its output
(so the ranks also condition on the same bits whatever their thread counts)."""
from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist

from .run import ParallelRun


def from_driver(run: ParallelRun, encode: Callable[[], list[torch.Tensor]]) -> list[torch.Tensor]:
    """`encode()` on rank 0 (CPU tensors), broadcast; every rank must call this the same number of times."""
    box = [encode() if run.is_driver else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
