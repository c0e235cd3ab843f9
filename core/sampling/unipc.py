"""UniPC (B(h) = e^h - 1 variant "bh2"), order 2, data prediction, for flow matching.

Each step: convert the velocity to an x0 prediction; from the 2nd step on, correct the
sample the model just saw with UniC (using the new x0); then predict the next sample
with UniP. Orders: 1 on the first step (warm-up) and on the last step (to sigma = 0),
2 otherwise; the corrector uses the order of the predictor that produced the sample.
"""
from __future__ import annotations

import math

import torch

from .flow_math import exp_factor, log_snr


class UniPC:
    def __init__(self, sigmas: torch.Tensor):
        self.sigmas = sigmas.tolist()  # [N+1]
        self.index = 0
        self.x0_history: list[torch.Tensor] = []  # x0 predictions of the last two steps, oldest first
        self.previous_sample = None  # the (corrected) sample the last predictor started from
        self.previous_order = 0

    def step(self, x: torch.Tensor, velocity: torch.Tensor) -> torch.Tensor:
        i, sig = self.index, self.sigmas
        x0 = x - sig[i] * velocity  # [B, C, T, H, W]
        if i > 0:
            x = self._correct(x0)
        self.x0_history = (self.x0_history + [x0])[-2:]
        order = min(2, len(sig) - 1 - i, len(self.x0_history))
        self.previous_sample, self.previous_order = x, order
        self.index += 1
        return self._predict(x, order)

    def _predict(self, x: torch.Tensor, order: int) -> torch.Tensor:
        i, sig = self.index - 1, self.sigmas
        s, t = sig[i], sig[i + 1]
        m0 = self.x0_history[-1]
        factor = exp_factor(s, t)  # alpha_t * B(h)
        out = (t / s) * x - factor * m0
        if order == 2:
            r = (log_snr(sig[i - 1]) - log_snr(s)) / (log_snr(t) - log_snr(s))
            # Order-2 UniP uses the fixed weight 1/2 on the divided difference.
            out = out - factor * 0.5 * (self.x0_history[0] - m0) / r
        return out

    def _correct(self, x0_now: torch.Tensor) -> torch.Tensor:
        i, sig = self.index, self.sigmas  # correcting the step sigma[i-1] -> sigma[i]
        s, t = sig[i - 1], sig[i]
        m0 = self.x0_history[-1]
        factor = exp_factor(s, t)
        out = (t / s) * self.previous_sample - factor * m0
        if self.previous_order == 1:
            return out - factor * 0.5 * (x0_now - m0)
        # Order 2: weights (rho_prev, rho_now) solve [[1, 1], [r, 1]] rho = (b1, b2), the
        # B(h) = e^h - 1 coefficients of the phi-function expansion with hh = -h.
        h = log_snr(t) - log_snr(s)
        r = (log_snr(sig[i - 2]) - log_snr(s)) / h
        hh = -h
        b_h = math.expm1(hh)
        g1 = b_h / hh - 1
        g2 = g1 / hh - 0.5
        b1, b2 = g1 / b_h, 2 * g2 / b_h
        rho_prev = (b1 - b2) / (1 - r)
        rho_now = b1 - rho_prev
        d_prev = (self.x0_history[0] - m0) / r
        return out - factor * (rho_prev * d_prev + rho_now * (x0_now - m0))
