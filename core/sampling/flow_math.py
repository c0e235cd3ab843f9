"""Scalar helpers shared by the multistep solvers (flow matching: alpha = 1 - sigma).

Exponential-integrator solvers work in log-SNR lambda = log(alpha / sigma). Their
first-order step from s to t is x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0
with h = lambda_t - lambda_s; `exp_factor` gives alpha_t (e^{-h} - 1) without logs so
that sigma_s = 1 (lambda = -inf) and sigma_t = 0 (lambda = +inf) stay finite.
"""
from __future__ import annotations

import math


def log_snr(sigma: float) -> float:
    if sigma <= 0:
        return math.inf
    if sigma >= 1:
        return -math.inf
    return math.log(1 - sigma) - math.log(sigma)


def exp_factor(sigma_s: float, sigma_t: float) -> float:
    """alpha_t * (e^{-h} - 1) for a step from sigma_s down to sigma_t."""
    return sigma_t * (1 - sigma_s) / sigma_s - (1 - sigma_t)
