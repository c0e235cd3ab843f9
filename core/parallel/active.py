"""The parallel run this process belongs to, if any. Kept free of torch.distributed imports: the sampling
engine asks it on every run, also where torch has no distributed support."""
from __future__ import annotations

from contextlib import contextmanager

_ACTIVE: list = []


def activate(run) -> None:
    """Make `run` (a core.parallel.ParallelRun) the one every later `run_sampling` of this process joins;
    None: sample alone again."""
    _ACTIVE[:] = [] if run is None else [run]


def active():
    """The active ParallelRun, or None."""
    return _ACTIVE[0] if _ACTIVE else None


@contextmanager
def activated(run):
    previous = active()
    activate(run)
    try:
        yield run
    finally:
        activate(previous)
