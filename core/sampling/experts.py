"""Wan2.2 A14B: a high-noise expert for the early steps, a low-noise expert for the rest."""
from __future__ import annotations

import torch

from .schedules import NUM_TRAIN_TIMESTEPS

BOUNDARY_T2V = 0.875
BOUNDARY_I2V = 0.900


def default_boundary(config) -> float:
    """The official boundary: 0.900 for image-conditioned experts (in_dim > out_dim), else 0.875."""
    in_dim, out_dim = getattr(config, "in_dim", None), getattr(config, "out_dim", None)
    is_i2v = in_dim is not None and out_dim is not None and in_dim > out_dim
    return BOUNDARY_I2V if is_i2v else BOUNDARY_T2V


def uses_high_noise_expert(timesteps: torch.Tensor, boundary: float) -> list[bool]:
    """Per step: True where the high-noise expert runs (official: int timestep >= boundary * 1000)."""
    return [float(t) >= boundary * NUM_TRAIN_TIMESTEPS for t in timesteps]
