"""The sampling loop: velocity in, solver step, progress out, cancellable between steps."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ..progress import SILENT, Progress
from .schedules import Schedule
from .solvers import make_solver


def run_loop(
    x: torch.Tensor,
    schedule: Schedule,
    solver: str,
    velocity_at: Callable[[torch.Tensor, int], torch.Tensor],
    progress: Progress = SILENT,
    after_step: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> torch.Tensor:
    """Integrate `x` [B, C, T, H, W] from sigma[0] to 0.

    `velocity_at(x, i)` is the (guided) model velocity at step i; `after_step` may edit the
    sample after each step (e.g. re-impose known frames). Progress gets the x0 estimate of
    each step as preview; cancellation is checked before the first and after every step.
    """
    stepper = make_solver(solver, schedule.sigmas)
    total = schedule.num_steps
    progress.check()
    for i in range(total):
        velocity = velocity_at(x, i).to(x.dtype)  # [B, C, T, H, W]
        preview = x - float(schedule.sigmas[i]) * velocity  # x0 estimate
        x = stepper.step(x, velocity)
        if after_step is not None:
            x = after_step(x)
        progress.step(i + 1, total, preview)
    return x
