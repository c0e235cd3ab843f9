"""A training-free step cache: skip DiT evaluations while the model output would barely change.

It wraps the velocity model between the sampler and the DiT, EasyCache-style (runtime-adaptive,
no calibration table): at every full evaluation it measures how strongly the output moved
relative to how much the input moved since the previous full evaluation (the rate `k`). On a
later call it estimates the output's relative change as `k * |x - x_prev| / |x_full|`, adds it
to an accumulator, and while the sum stays below `threshold` skips the DiT. A full evaluation
resets the sum.

What a skipped call returns is the last full evaluation's denoised estimate x0 = x - sigma * v,
turned back into a velocity at the current point: (x - x0) / sigma. On the straight path of an
ideal flow this equals reusing v, but a real model's x0 estimate drifts less between steps than
its velocity: on the demo model it gave 3-5 dB more PSNR than reusing v at the same number of
evaluations (bench.step_cache).

Each pass (conditional, unconditional: told apart by the identity of the context object, which
the sampler keeps for a whole run) has its own state, but the first pass to reach a step decides
for all of them: guidance multiplies the difference of the passes, so a fresh conditional output
beside a stale unconditional one costs more than both stale (again ~3-5 dB on the demo model).
With two experts the step count is shared and a change of expert forces a full evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch


@dataclass(frozen=True)
class StepCacheSettings:
    """threshold: tolerated accumulated relative output change (0 = never skip; ~0.05-0.2 typical).
    Steps with index < start_step or >= end_step always run the DiT; a negative end_step counts
    from the end (-1: the last step always runs)."""

    threshold: float = 0.1
    start_step: int = 1
    end_step: int = -1

    def __post_init__(self) -> None:
        if not (isinstance(self.threshold, (int, float)) and 0 <= self.threshold <= 10):
            raise ValueError(f"step cache threshold must be a number in [0, 10], got {self.threshold!r}; "
                             "0 disables skipping, 0.05-0.2 is typical")
        if not (isinstance(self.start_step, int) and self.start_step >= 0):
            raise ValueError(f"step cache start_step must be an integer >= 0, got {self.start_step!r}")
        if not isinstance(self.end_step, int):
            raise ValueError(f"step cache end_step must be an integer (negative counts from the end), "
                             f"got {self.end_step!r}")


@dataclass
class _PassState:
    step: int = 0  # calls seen for this pass = index of the sampling step
    model: Optional[int] = None  # id of the DiT that produced `velocity`
    x_prev: Optional[torch.Tensor] = None  # input of the previous call (run or skipped)
    x_full: Optional[torch.Tensor] = None  # input of the last full evaluation
    velocity: Optional[torch.Tensor] = None  # output of the last full evaluation
    denoised: Optional[torch.Tensor] = None  # its x0 estimate: x_full - sigma_full * velocity
    rate: Optional[float] = None  # k: relative output change per relative input change
    accumulated: float = 0.0


@dataclass
class StepCacheStats:
    calls: int = 0
    evaluations: int = 0

    @property
    def skipped(self) -> int:
        return self.calls - self.evaluations


class StepCache:
    """Shared state of one sampling run; `wrap(dit)` gives the model to hand to the sampler."""

    def __init__(self, settings: StepCacheSettings, num_steps: int, sigmas: Optional[Sequence[float]] = None,
                 agree: Optional[Callable[[bool], bool]] = None):
        """`sigmas`: the sampler's noise level at each step (its schedule's sigmas); without them
        sigma is read from the timestep, which Wan samplers set to sigma * 1000 (truncated).
        `agree`: in a multi-process run (core/parallel), turns this rank's skip decision into the one all
        ranks running the same call take; None = decide alone."""
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if sigmas is not None and len(sigmas) < num_steps:
            raise ValueError(f"got {len(sigmas)} sigmas for {num_steps} steps; pass the sampler's schedule")
        self.settings = settings
        self.num_steps = num_steps
        self.sigmas = None if sigmas is None else [float(s) for s in sigmas]
        end = settings.end_step if settings.end_step >= 0 else num_steps + settings.end_step
        self.cached_steps = range(settings.start_step, max(settings.start_step, end))
        self.stats = StepCacheStats()
        self._passes: dict[int, _PassState] = {}
        self._decided: dict[int, bool] = {}  # step -> skip?, decided by the first pass to reach the step
        self._last_t = float("inf")  # timestep of the latest call
        self.agree = agree

    def wrap(self, dit) -> "CachedModel":
        return CachedModel(dit, self)

    def reset(self) -> None:
        self._passes.clear()
        self._decided.clear()
        self._last_t = float("inf")
        self.stats = StepCacheStats()

    def __call__(self, dit, x: torch.Tensor, t, context, **kwargs) -> torch.Tensor:
        state = self._state(context, t)
        self.stats.calls += 1
        step, state.step = state.step, state.step + 1
        sigma = self._sigma(step, t)
        skip = self._can_skip(state, dit, x, step, sigma)
        if self.agree is not None:
            skip = self.agree(skip)
        if skip:
            state.x_prev = x
            return (x - state.denoised) / sigma
        velocity = dit(x, t, context, **kwargs)  # [B, C, T, H, W]
        self.stats.evaluations += 1
        if state.model == id(dit) and state.velocity is not None:
            state.rate = _relative_change(velocity, state.velocity) / max(_relative_change(x, state.x_full), 1e-12)
        else:
            state.rate = None  # a new model (or the first call): the rate must be measured afresh
        state.model, state.x_full, state.x_prev, state.velocity = id(dit), x, x, velocity
        state.denoised = x - sigma * velocity
        state.accumulated = 0.0
        return velocity

    def _state(self, context, t) -> _PassState:
        t_now = float(torch.as_tensor(t).max())
        if t_now > self._last_t:  # timesteps only fall within a run: a rise starts a new one
            self._passes.clear()
            self._decided.clear()
        self._last_t = t_now
        return self._passes.setdefault(id(context), _PassState())

    def _sigma(self, step: int, t) -> float:
        if self.sigmas is not None and step < len(self.sigmas):
            return self.sigmas[step]
        return float(torch.as_tensor(t).max()) / 1000  # per-token t: the noisy tokens' level

    def _can_skip(self, state: _PassState, dit, x: torch.Tensor, step: int, sigma: float) -> bool:
        if (self.settings.threshold <= 0 or step not in self.cached_steps or state.rate is None
                or state.model != id(dit) or state.velocity.shape != x.shape or sigma < 1e-3):
            return False
        # Input moved since the previous call, relative to the last evaluated input, times the rate.
        state.accumulated += state.rate * _distance(x, state.x_prev) / max(_norm(state.x_full), 1e-12)
        # The first pass to reach a step decides for all: guidance scales the difference of the passes,
        # so a fresh conditional output beside a stale unconditional one is the costliest mix.
        return self._decided.setdefault(step, state.accumulated < self.settings.threshold)


class CachedModel:
    """The DiT as the sampler sees it (`model(x, t, context, **kw)`, `.config`, `.parameters()`),
    with the step cache deciding per call whether to run it."""

    def __init__(self, dit, cache: StepCache):
        self.dit = dit
        self.cache = cache

    @property
    def config(self):
        return getattr(self.dit, "config", None)

    def parameters(self):
        return self.dit.parameters()

    def __call__(self, x: torch.Tensor, t, context, **kwargs) -> torch.Tensor:
        return self.cache(self.dit, x, t, context, **kwargs)


def with_step_cache(settings: Optional[StepCacheSettings], num_steps: int, dit, dit_low_noise=None,
                    sigmas: Optional[Sequence[float]] = None):
    """(dit, dit_low_noise, cache) ready for `core.sampling.sample`; unchanged models and None
    when `settings` is None. `sigmas`: the sampler's schedule (see `StepCache`)."""
    if settings is None:
        return dit, dit_low_noise, None
    cache = StepCache(settings, num_steps, sigmas)
    return cache.wrap(dit), (cache.wrap(dit_low_noise) if dit_low_noise is not None else None), cache


def _norm(t: torch.Tensor) -> float:
    return float(t.float().abs().mean())


def _distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().mean())


def _relative_change(new: torch.Tensor, old: torch.Tensor) -> float:
    return _distance(new, old) / max(_norm(old), 1e-12)
