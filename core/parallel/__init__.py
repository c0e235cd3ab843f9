"""Multi-process sampling on torch.distributed: sequence (Ulysses, ring), CFG and window parallel, FSDP2.

    run = start(ParallelPlan.parse("ulysses=2,cfg=2"))   # in every process torchrun started
    parallelize(dit, run)                                 # each rank: the same DiT, its share of the work
"""
from .plan import ParallelPlan
from .run import ParallelRun, start
from .setup import parallelize, unparallelize

__all__ = ["ParallelPlan", "ParallelRun", "parallelize", "start", "unparallelize"]
