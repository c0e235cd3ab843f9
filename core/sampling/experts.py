"""Wan2.2 A14B: a high-noise expert for the early steps, a low-noise expert for the rest."""
from __future__ import annotations

import torch

from .conditioning import image_mode
from .schedules import NUM_TRAIN_TIMESTEPS

BOUNDARY_T2V = 0.875
BOUNDARY_I2V = 0.900


def default_boundary(dit) -> float:
    """The official boundary: 0.900 for image-conditioned experts (in_dim > out_dim), else 0.875."""
    out_dim = getattr(getattr(dit, "config", None), "out_dim", None)
    return BOUNDARY_I2V if out_dim is not None and image_mode(dit, out_dim) == "concat" else BOUNDARY_T2V


def uses_high_noise_expert(timesteps: torch.Tensor, boundary: float) -> list[bool]:
    """Per step: True where the high-noise expert runs (official: int timestep >= boundary * 1000)."""
    return [float(t) >= boundary * NUM_TRAIN_TIMESTEPS for t in timesteps]
