"""Euler for flow matching: one velocity evaluation per step, first order."""
from __future__ import annotations

import torch


class Euler:
    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas.tolist()  # [N+1]
        self.index = 0

    def step(self, x: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        i = self.index
        self.index += 1
        return x + (self.sigmas[i + 1] - self.sigmas[i]) * velocity
