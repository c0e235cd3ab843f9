"""Flow-matching noise levels (sigmas) with Wan's time shift, and the model timesteps.

A schedule of N steps holds N+1 descending sigmas ending at 0 (step i goes from
sigma[i] to sigma[i+1]) and N model timesteps. Sigmas are float32 like the official
and diffusers schedulers; timesteps are sigma * 1000 truncated to integers, as both
the official Wan loop and diffusers' UniPC/DPM schedulers feed the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .settings import SamplerSettings

NUM_TRAIN_TIMESTEPS = 1000
# The official UniPC scheduler's largest training sigma: 1 - 1/1000 held in float32.
WAN_SIGMA_MAX = float(np.float32(1 - 1 / NUM_TRAIN_TIMESTEPS))


@dataclass(frozen=True)
class Schedule:
    sigmas: torch.Tensor  # [N+1] float32, descending, last = 0
    timesteps: torch.Tensor  # [N] float32, integer-valued model time in [0, 1000]

    @property
    def num_steps(self) -> int:
        return self.timesteps.shape[0]


def shift_sigmas(sigmas: np.ndarray, shift: float) -> np.ndarray:
    """SD3-style time shift: more of the grid spent at high noise for shift > 1."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def unshift_sigma(sigma: float, shift: float) -> float:
    """Inverse of `shift_sigmas` for one value."""
    return sigma / (shift - (shift - 1) * sigma)


def unshifted_grid(steps: int, grid: str, solver: str) -> np.ndarray:
    """The N linear (pre-shift) noise levels of a full schedule, float64."""
    if grid == "diffusers":
        return np.linspace(1, 1 / NUM_TRAIN_TIMESTEPS, steps + 1)[:-1]
    # Official Wan: DPM++ uses its own grid starting at exactly 1.0; UniPC (and our Euler) 0.999.
    start = 1.0 if solver == "dpmpp_2m" else WAN_SIGMA_MAX
    return np.linspace(start, 0, steps + 1)[:-1]


def make_schedule(settings: SamplerSettings) -> Schedule:
    """The schedule a run with these settings follows, including part-way starts."""
    s = settings
    if s.start_sigma is not None:
        # Same shifted shape as a full grid, squeezed to start at the requested level.
        top = unshift_sigma(s.start_sigma, s.shift)
        sigmas = shift_sigmas(np.linspace(top, 0, s.steps + 1)[:-1], s.shift)
    else:
        total = s.steps if s.denoise == 1 else int(s.steps / s.denoise + 1e-9)
        sigmas = shift_sigmas(unshifted_grid(total, s.sigma_grid, s.solver), s.shift)
        if s.sigma_grid == "diffusers" and abs(sigmas[0] - 1) < 1e-6:
            # diffusers keeps the first level off 1 so that log(1 - sigma) stays finite.
            sigmas[0] -= 1e-6
        first = s.start_step if s.start_step is not None else total - s.steps
        sigmas = sigmas[first:]
    return _finish(sigmas)


def _finish(sigmas: np.ndarray) -> Schedule:
    timesteps = np.trunc(sigmas * NUM_TRAIN_TIMESTEPS)  # official: int64 cast
    return Schedule(
        sigmas=torch.from_numpy(np.append(sigmas, 0.0).astype(np.float32)),
        timesteps=torch.from_numpy(timesteps.astype(np.float32)),
    )
