"""The process group of a parallel run: `start(plan)` joins (or checks) torch.distributed and builds the
device mesh whose axes are the plan's dimensions (`windows`, `cfg`, `sequence`)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh

from .plan import DIMENSIONS, ParallelPlan


@dataclass(frozen=True, eq=False)
class ParallelRun:
    """This process's place in a parallel run. Rank 0 (first of every axis) is the driver: it reports
    progress and writes the outputs."""

    plan: ParallelPlan
    mesh: DeviceMesh
    device: torch.device
    calls: dist.ProcessGroup  # the ranks that run the same DiT calls: one window's cfg x sequence block

    @property
    def rank(self) -> int:
        return dist.get_rank()

    @property
    def is_driver(self) -> bool:
        return self.rank == 0

    def group(self, axis: str) -> dist.ProcessGroup:
        return self.mesh.get_group(axis)

    def rank_in(self, axis: str) -> int:
        return self.mesh.get_local_rank(axis)

    def size_of(self, axis: str) -> int:
        return self.mesh.size(DIMENSIONS.index(axis))


def start(plan: ParallelPlan, device: Union[str, torch.device, None] = None) -> ParallelRun:
    """Join the run started by torchrun (or by the caller's `init_process_group`): NCCL on CUDA, gloo on the
    CPU. The number of processes must be the plan's; each CUDA rank takes the GPU of its LOCAL_RANK."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
            raise ValueError(f"a parallel run ({plan.describe()}) is started by torchrun, one process per rank: "
                             f"torchrun --nproc-per-node {plan.world_size} -m kinema run ...")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    check_backend(device)
    plan.check_world(dist.get_world_size())
    mesh = init_device_mesh(device.type, plan.mesh_shape, mesh_dim_names=DIMENSIONS)
    return ParallelRun(plan, mesh, device, mesh["cfg", "sequence"]._flatten().get_group())


def check_backend(device: torch.device) -> None:
    """The process group's backend must move tensors of the device the model runs on."""
    backend = str(dist.get_backend()).lower()  # e.g. "gloo", "nccl", "cpu:gloo,cuda:nccl"
    usable = {"cpu": ("gloo", "mpi"), "cuda": ("nccl", "gloo")}.get(device.type, ())
    if not any(name in backend for name in usable):
        raise ValueError(f"the process group's backend {backend!r} cannot move {device.type} tensors; start it with "
                         f"{' or '.join(usable) or 'a backend for that device'} (NCCL on GPUs, gloo on the CPU)")
