"""The step cache between the sampler and the DiT: when it runs the model, what it returns when it
does not, per-pass state, step windows, expert switches, and its settings' errors."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kinema.core.cache import StepCache, StepCacheSettings, with_step_cache
from kinema.core.sampling import SamplerSettings, make_schedule, sample

SHAPE = (1, 4, 2, 4, 4)


class FakeDiT:
    """Velocity = per-context constant + slope * x; logs (step timestep, context id) of every run."""

    def __init__(self, slope: float = 0.0, offset: float = 0.0):
        self.slope, self.offset = slope, offset
        self.config = SimpleNamespace(patch_size=(1, 2, 2), in_dim=4, out_dim=4)
        self.runs: list[tuple[float, int]] = []

    def parameters(self):
        return iter([torch.zeros(1)])

    def __call__(self, x, t, context, **kwargs):
        self.runs.append((float(t.max()), id(context)))
        return context[0].mean() + self.offset + self.slope * x


def contexts():
    return [torch.full((3, 8), 1.0)], [torch.full((3, 8), -2.0)]


def run(model, settings: SamplerSettings, **kw):
    positive, negative = kw.pop("contexts", contexts())
    return sample(model, positive, negative, settings=settings, shape=SHAPE, **kw)


def test_threshold_zero_is_the_uncached_sampler():
    settings = SamplerSettings(steps=8, cfg=4.0, seed=3)
    dit = FakeDiT(slope=0.3)
    expected = run(dit, settings)
    cached, _, cache = with_step_cache(StepCacheSettings(threshold=0.0), 8, FakeDiT(slope=0.3))
    assert torch.equal(run(cached, settings), expected)
    assert cache.stats.calls == cache.stats.evaluations == 16


def sigmas(settings: SamplerSettings) -> list[float]:
    return make_schedule(settings).sigmas.tolist()


def test_conditional_and_unconditional_passes_keep_separate_state():
    """A model whose output never changes is skipped as soon as its rate is known; the reused
    estimates must still be each pass's own, so guidance gives the uncached result (exactly, up
    to rounding: on a straight path the reused x0 gives back the same velocity)."""
    settings = SamplerSettings(steps=10, cfg=5.0, seed=0, solver="euler")
    expected = run(FakeDiT(), settings)
    dit = FakeDiT()
    cached, _, cache = with_step_cache(StepCacheSettings(threshold=0.5, start_step=0, end_step=10), 10, dit,
                                       sigmas=sigmas(settings))
    torch.testing.assert_close(run(cached, settings), expected)
    # Two full runs per pass measure the rate (0 here); every later call is a reuse.
    assert cache.stats.evaluations == 4 and cache.stats.calls == 20


def test_start_and_end_steps_always_run_the_model():
    settings = SamplerSettings(steps=10, cfg=1.0, seed=0)
    dit = FakeDiT(slope=0.5)
    cached, _, cache = with_step_cache(StepCacheSettings(threshold=10.0, start_step=3, end_step=-2), 10, dit)
    run(cached, settings)
    step_of = {float(t): i for i, t in enumerate(make_schedule(settings).timesteps)}
    # 0-2: before start_step; 3 is cacheable and the two full runs at steps 1, 2 already gave the
    # rate, so 3-7 are reused; 8, 9: from end_step = 10 - 2 on.
    assert [step_of[t] for t, _ in dit.runs] == [0, 1, 2, 8, 9]
    assert cache.stats.skipped == 5


def test_expert_switch_forces_a_full_evaluation():
    # Euler: each step moves along the returned velocity, so a constant model's x0 estimate stays put
    settings = SamplerSettings(steps=6, cfg=1.0, seed=0, boundary=0.9, solver="euler")
    high, low = FakeDiT(offset=1.0), FakeDiT(offset=-1.0)
    expected = run(FakeDiT(offset=1.0), settings, dit_low_noise=FakeDiT(offset=-1.0))
    h, l, cache = with_step_cache(StepCacheSettings(threshold=10.0, start_step=0, end_step=6), 6, high, low,
                                  sigmas=sigmas(settings))
    torch.testing.assert_close(run(h, settings, dit_low_noise=l), expected)  # constant experts: reuse is exact
    assert len(high.runs) == 2 and len(low.runs) == 2  # each expert measures its own rate first


def test_skips_follow_the_accumulated_estimate():
    """v = 2x: the rate is 1 (relative output change = relative input change), so a call is
    skipped while the summed input movement since the last run, relative to that run's input,
    stays under the threshold; a skipped call returns the velocity that leads from the current
    point to the last run's denoised estimate x0 = x_run - sigma_run * v_run (sigma = t / 1000)."""
    cache = StepCache(StepCacheSettings(threshold=0.25, start_step=0, end_step=100), num_steps=100)
    dit, context = FakeDiT(slope=2.0, offset=-1.0), [torch.ones(1, 8)]  # context mean 1: v = 2x
    x = torch.ones(SHAPE)
    ran, denoised = [], None
    for step, scale in enumerate([1.0, 1.1, 1.2, 1.3, 1.4, 1.5]):  # the input moves by 0.1 per call
        runs_before = len(dit.runs)
        sigma = 0.9 - 0.1 * step
        out = cache(dit, x * scale, torch.tensor([1000.0 * sigma]), context)
        ran.append(len(dit.runs) > runs_before)
        if ran[-1]:
            torch.testing.assert_close(out, 2 * x * scale)
            denoised = x * scale - sigma * 2 * x * scale
        else:
            torch.testing.assert_close(out, (x * scale - denoised) / sigma)
    # Runs at 1.0 and 1.1 give the rate (0.2/2) / (0.1/1) = 1; then 0.1/1.1 per call accumulates
    # 0.09, 0.18, 0.27 -> the third runs and resets; 0.1/1.4 = 0.07 is skipped again.
    assert ran == [True, True, False, False, True, False]


def test_tiny_dit_saves_evaluations_and_stays_close(tmp_path):
    from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit
    from kinema.core.dit import load_dit

    dit = load_dit(save_tiny_dit(tmp_path, "official", model=make_tiny_diffusers_dit("t2v", num_layers=1)))
    g = torch.Generator().manual_seed(0)
    positive, negative = [torch.randn(12, 64, generator=g)], [torch.randn(7, 64, generator=g)]
    settings = SamplerSettings(steps=12, cfg=5.0, seed=1)
    shape = (1, 16, 2, 4, 4)
    expected = sample(dit, positive, negative, settings=settings, shape=shape)
    cached, _, cache = with_step_cache(StepCacheSettings(threshold=0.2), 12, dit)
    out = sample(cached, positive, negative, settings=settings, shape=shape)
    assert cache.stats.evaluations < cache.stats.calls == 24
    assert ((out - expected).norm() / expected.norm()).item() < 0.05


def test_a_new_run_resets_the_state():
    settings = SamplerSettings(steps=8, cfg=3.0, seed=2)
    cached, _, cache = with_step_cache(StepCacheSettings(threshold=0.3), 8, FakeDiT(slope=0.4))
    first = run(cached, settings)
    calls = cache.stats.evaluations
    assert torch.equal(run(cached, settings), first)
    assert cache.stats.evaluations == 2 * calls


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold=-0.1), r"threshold must be a number in \[0, 10\].*0 disables"),
    (dict(start_step=-1), r"start_step must be an integer >= 0"),
    (dict(end_step=2.5), r"end_step must be an integer \(negative counts from the end\)"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StepCacheSettings(**kwargs)


def test_the_first_pass_at_a_step_decides_for_both():
    """Guidance amplifies a fresh conditional output beside a stale unconditional one, so both
    passes run or both reuse. The unconditional output here has a big constant part, so its own
    rate is small: deciding alone it would reuse at steps where the conditional pass runs."""
    settings = SamplerSettings(steps=12, cfg=4.0, seed=0)
    dit = FakeDiT(slope=0.5)
    positive, negative = [torch.full((3, 8), 5.0)], [torch.full((3, 8), 30.0)]
    cached, _, cache = with_step_cache(StepCacheSettings(threshold=0.15), 12, dit, sigmas=sigmas(settings))
    sample(cached, positive, negative, settings=settings, shape=SHAPE)
    cond_id, uncond_id = dict.fromkeys(c for _, c in dit.runs)  # the sampler runs the conditional pass first
    cond_runs = [t for t, c in dit.runs if c == cond_id]
    assert cond_runs == [t for t, c in dit.runs if c == uncond_id]
    assert 2 < len(cond_runs) < 12
    rates = {round(p.rate, 3) for p in cache._passes.values()}
    assert len(rates) == 2 and min(rates) < 0.5 * max(rates)  # the passes did measure different rates
