"""End-to-end `sample()` in parallel on CPU processes (gloo) against the same run in one process: three
solvers with the two-expert switch, the step cache (the same steps evaluated), CFG-parallel (exact),
window-parallel long video (exact), CFG x Ulysses on a 2 x 2 mesh, and an interrupt on rank 0 that
stops every rank at the same step."""
from __future__ import annotations

import pytest

from parallel_cases import sampling_cases
from parallel_world import HEAVY, run_world
from tiny_dit import make_tiny_diffusers_dit, save_tiny_dit

BOUND = 1e-5
STEPS = dict(steps=3, cfg=4.0, seed=5)
CASES = {
    "unipc, two experts": dict(settings=dict(solver="unipc", boundary=0.95, **STEPS), experts=True),
    "euler": dict(settings=dict(solver="euler", **STEPS)),
    "dpmpp_2m": dict(settings=dict(solver="dpmpp_2m", **STEPS)),
    # 8 steps: the cache skips some of them (3 steps leave it nothing to skip)
    "step cache, two experts": dict(settings=dict(solver="unipc", steps=8, cfg=4.0, seed=5, boundary=0.9),
                                    experts=True, cache=dict(threshold=1.0)),
}
LONG = {"long video": dict(settings=dict(solver="euler", **{**STEPS, "cfg": 1.0}), shape=(1, 16, 7, 4, 4),
                           long=dict(window=3, overlap=1, freenoise=False))}


def _models(tmp_path):
    paths = []
    for name, seed in (("high", 0), ("low", 7)):
        model = make_tiny_diffusers_dit("t2v", num_heads=4, head_dim=16, seed=seed)
        paths.append(str(save_tiny_dit(tmp_path / name, "official", "t2v", model=model)))
    return paths


def _check(results, exact_plans=()):
    for plan in results[0]:
        stops = [plans[plan].pop("interrupt") for plans in results]
        assert all(stopped for stopped, _ in stops), f"{plan}: the interrupt on rank 0 did not stop every rank: {stops}"
        assert len({calls for _, calls in stops}) == 1, f"{plan}: ranks stopped after different DiT calls: {stops}"
        for rank, plans in enumerate(results):
            for name, (error, same_steps) in plans[plan].items():
                bound = 0.0 if plan in exact_plans else BOUND
                assert error <= bound, f"rank {rank} {plan} {name}: relative error {error:.2e} > {bound}"
                assert same_steps, f"rank {rank} {plan} {name}: other steps were evaluated (step cache decisions)"
    print({plan: {name: f"{e:.1e}" for name, (e, _) in cases.items()} for plan, cases in results[0].items()})


def test_two_ranks(tmp_path):
    high, low = _models(tmp_path)
    plans = {"ulysses=2": [*CASES, *LONG], "cfg=2": list(CASES), "windows=2": list(LONG)}
    if HEAVY:
        plans["ring=2"] = list(CASES)
    results = run_world(sampling_cases, 2, high, low, plans, {**CASES, **LONG}, 3)
    _check(results, exact_plans=("cfg=2", "windows=2"))


@pytest.mark.skipif(not HEAVY, reason="4 processes: KINEMA_HEAVY=1")
def test_cfg_times_ulysses(tmp_path):
    high, low = _models(tmp_path)
    plans = {"cfg=2,ulysses=2": list(CASES), "windows=2,ulysses=2": list(LONG)}
    results = run_world(sampling_cases, 4, high, low, plans, {**CASES, **LONG}, 3)
    _check(results, exact_plans=("windows=2,ulysses=2",))
