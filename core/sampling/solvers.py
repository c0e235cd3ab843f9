"""Solver registry: a solver is a stateful stepper `step(x, velocity) -> x_next` over a sigma grid."""
from __future__ import annotations

import torch

from .dpmpp_2m import DPMPP2M
from .euler import Euler
from .settings import SOLVERS
from .unipc import UniPC

_SOLVERS = {"unipc": UniPC, "euler": Euler, "dpmpp_2m": DPMPP2M}


def make_solver(name: str, sigmas: torch.Tensor):
    """A fresh stepper for one run over `sigmas` [N+1]."""
    if name not in _SOLVERS:
        raise ValueError(f"unknown solver {name!r}; choose one of {', '.join(SOLVERS)}.")
    return _SOLVERS[name](sigmas)
