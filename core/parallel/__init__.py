"""Multi-process sampling on torch.distributed: sequence (Ulysses, ring), CFG and window parallel, FSDP2.

    run = start(ParallelPlan.parse("ulysses=2,cfg=2"))   # in every process torchrun started
    activate(run)                                         # later run_sampling calls split their work

The names below load on first use: the sampling engine imports this package on every run, also
where torch has no distributed support.
"""
from .active import activate, activated, active
from .plan import ParallelPlan

__all__ = ["ParallelPlan", "ParallelRun", "activate", "activated", "active", "parallelize", "start", "unparallelize"]


def __getattr__(name: str):
    if name in ("ParallelRun", "start"):
        from . import run
        return getattr(run, name)
    if name in ("parallelize", "unparallelize"):
        from . import setup
        return getattr(setup, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
