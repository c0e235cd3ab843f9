"""DPM-Solver++(2M), data prediction, midpoint form, for flow matching.

Step i uses the x0 predictions at sigma_i and sigma_{i-1}; the first step (no history)
and the last step (to sigma = 0, where the second-order term is ill-posed) are first order.
"""
from __future__ import annotations

import math

import torch

from .flow_math import exp_factor, log_snr


class DPMPP2M:
    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas.tolist()  # [N+1]
        self.index = 0
        self.previous_x0 = None

    def step(self, x: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        i, sig = self.index, self.sigmas
        s, t = sig[i], sig[i + 1]
        x0 = x - s * velocity  # [B, C, T, H, W]
        factor = exp_factor(s, t)
        out = (t / s) * x - factor * x0
        last = i == len(sig) - 2
        if self.previous_x0 is not None and not last:
            h = log_snr(t) - log_snr(s)
            h_prev = log_snr(s) - log_snr(sig[i - 1])
            # D1 = (x0 - x0_prev) / r with r = h_prev / h; a start at sigma = 1 has h_prev = inf, D1 = 0.
            inv_r = 0.0 if math.isinf(h_prev) else h / h_prev
            out = out - 0.5 * factor * inv_r * (x0 - self.previous_x0)
        self.previous_x0 = x0
        self.index += 1
        return out
