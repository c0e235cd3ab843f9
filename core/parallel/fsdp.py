"""FSDP2 for the DiT: `fully_shard` per transformer block (its cross-attention a unit of its own), then the
rest, over every rank of the run. Each rank stores 1/N of the weights and gathers a unit's weights just
before running it, then frees them. The text keys and values (`prepare_context`, run outside `forward`)
gather their units the same way."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.device_mesh import init_device_mesh

from .run import ParallelRun


def shard_blocks(dit: nn.Module, run: ParallelRun) -> None:
    from torch.distributed.fsdp import FSDPModule, fully_shard, register_fsdp_forward_method

    if isinstance(dit, FSDPModule):
        return  # sharded by an earlier run over the same processes
    if any(p.dtype not in (torch.float32, torch.bfloat16, torch.float16) for p in dit.parameters()):
        raise ValueError("fsdp shards float32/bf16/fp16 weights; this DiT holds quantised (fp8/GGUF) ones. "
                         "Load it in bf16 to shard it, or drop fsdp from the parallel plan")
    mesh = init_device_mesh(run.device.type, (dist.get_world_size(),))
    for block in [*dit.blocks, *getattr(dit, "vace_blocks", ())]:
        fully_shard(block.cross_attn, mesh=mesh)
        register_fsdp_forward_method(block.cross_attn, "keys_values")  # called by prepare_context
        fully_shard(block, mesh=mesh)
    fully_shard(dit, mesh=mesh)
    register_fsdp_forward_method(dit, "prepare_context")


def local_parameter_count(dit: nn.Module) -> int:
    """Parameter elements this rank stores (its shards, under FSDP)."""
    return sum(getattr(p, "to_local", lambda p=p: p)().numel() for p in dit.parameters())
