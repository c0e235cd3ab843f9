"""Our schedules and solvers against diffusers' schedulers (independent reference) on toy fields."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

from kinema.core.sampling import SamplerSettings, make_schedule
from kinema.core.sampling.schedules import WAN_SIGMA_MAX, unshifted_grid
from kinema.core.sampling.solvers import make_solver

CASES = [(1, 5.0), (2, 3.0), (10, 5.0), (40, 12.0)]


def toy_field():
    """A fixed random affine velocity field that also depends on the timestep."""
    g = torch.Generator().manual_seed(1)
    a = torch.randn(16, 16, generator=g) / 4
    b = torch.randn(16, generator=g)
    return lambda x, t: x @ a.T * 0.5 - 0.3 * x + b * (float(t) / 1000)


def run_ours(solver, grid, steps, shift, x):
    settings = SamplerSettings(steps=steps, shift=shift, solver=solver, sigma_grid=grid)
    schedule = make_schedule(settings)
    stepper, field = make_solver(solver, schedule.sigmas), toy_field()
    for i in range(steps):
        x = stepper.step(x, field(x, schedule.timesteps[i]))
    return schedule, x


def run_diffusers(scheduler, x):
    field = toy_field()
    for t in scheduler.timesteps:
        x = scheduler.step(field(x, t), t, x).prev_sample
    return x


def unipc(shift):
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift,
                                   solver_order=2, solver_type="bh2", predict_x0=True, lower_order_final=True,
                                   final_sigmas_type="zero")


@pytest.fixture
def x_start():
    return torch.randn(3, 16, generator=torch.Generator().manual_seed(2))


def test_official_grid_sanity_values():
    # wan_models.md 7.3: 2.1 T2V 50 steps shift 5 and 2.2 T2V 40 steps shift 12.
    t = make_schedule(SamplerSettings(steps=50, shift=5.0)).timesteps.long().tolist()
    assert t[:4] == [999, 995, 991, 987] and t[-3:] == [241, 172, 92]
    t = make_schedule(SamplerSettings(steps=40, shift=12.0)).timesteps.long().tolist()
    assert t[:3] == [999, 997, 995] and t[-3:] == [492, 386, 235]
    assert WAN_SIGMA_MAX == float(np.float32(0.999))


@pytest.mark.parametrize("steps,shift", CASES)
def test_unipc_diffusers_grid(steps, shift, x_start):
    ref = unipc(shift)
    ref.set_timesteps(steps)
    schedule, ours = run_ours("unipc", "diffusers", steps, shift, x_start)
    assert torch.equal(schedule.sigmas, ref.sigmas)
    assert torch.equal(schedule.timesteps.long(), ref.timesteps)
    torch.testing.assert_close(ours, run_diffusers(ref, x_start), rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps,shift", CASES)
def test_unipc_official_grid(steps, shift, x_start):
    # diffusers fed the official unshifted grid (0.999 -> 0) shifts it with the same formula.
    ref = unipc(shift)
    ref.set_timesteps(sigmas=unshifted_grid(steps, "wan", "unipc"))
    schedule, ours = run_ours("unipc", "wan", steps, shift, x_start)
    assert torch.equal(schedule.sigmas, ref.sigmas)
    assert torch.equal(schedule.timesteps.long(), ref.timesteps)
    torch.testing.assert_close(ours, run_diffusers(ref, x_start), rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps,shift", CASES)
def test_euler_official_grid(steps, shift, x_start):
    ref = FlowMatchEulerDiscreteScheduler(shift=shift)
    schedule, ours = run_ours("euler", "wan", steps, shift, x_start)
    # Diffusers shifts the unshifted grid itself; timesteps passed so both feed the field the same time.
    ref.set_timesteps(sigmas=unshifted_grid(steps, "wan", "euler"), timesteps=schedule.timesteps.numpy())
    torch.testing.assert_close(schedule.sigmas, ref.sigmas, rtol=0, atol=2e-7)
    torch.testing.assert_close(ours, run_diffusers(ref, x_start), rtol=0, atol=1e-5)


@pytest.mark.parametrize("steps,shift", CASES)
def test_euler_diffusers_grid(steps, shift, x_start):
    schedule, ours = run_ours("euler", "diffusers", steps, shift, x_start)
    # FlowMatchEuler has no "1 - 1e-6" first level: hand it our (already shifted) grid with shift 1.
    ref = FlowMatchEulerDiscreteScheduler(shift=1.0)
    ref.set_timesteps(sigmas=schedule.sigmas[:-1].numpy(), timesteps=schedule.timesteps.numpy())
    assert torch.equal(schedule.sigmas, ref.sigmas)
    torch.testing.assert_close(ours, run_diffusers(ref, x_start), rtol=0, atol=1e-5)


@pytest.mark.parametrize("grid", ["wan", "diffusers"])
@pytest.mark.parametrize("steps,shift", CASES)
def test_dpmpp_2m(grid, steps, shift, x_start):
    # diffusers' DPMSolverMultistepScheduler supports flow prediction; its own flow grid differs
    # from both of ours, so its sigmas/timesteps are replaced by ours (the update reads them).
    ref = DPMSolverMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=shift,
                                      algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
                                      lower_order_final=True, final_sigmas_type="zero")
    ref.set_timesteps(steps)
    schedule, ours = run_ours("dpmpp_2m", grid, steps, shift, x_start)
    ref.sigmas, ref.timesteps = schedule.sigmas.clone(), schedule.timesteps.long()
    ref.set_begin_index(0)
    torch.testing.assert_close(ours, run_diffusers(ref, x_start), rtol=0, atol=1e-5)


def test_dpmpp_official_grid_starts_at_one():
    # Official Wan DPM++: linspace(1, 0, N+1)[:N] shifted (wan_models.md 7.3).
    sigmas = make_schedule(SamplerSettings(steps=4, shift=3.0, solver="dpmpp_2m")).sigmas
    u = np.linspace(1, 0, 5)[:4]
    expected = np.append(3 * u / (1 + 2 * u), 0).astype(np.float32)
    assert torch.equal(sigmas, torch.from_numpy(expected))


@pytest.mark.parametrize("solver", ["euler", "unipc", "dpmpp_2m"])
def test_exact_field_recovers_data(solver):
    # For one data point x0 the true flow velocity is (x - x0) / sigma: every solver lands on x0.
    x0 = torch.randn(2, 8, dtype=torch.float64)
    schedule = make_schedule(SamplerSettings(steps=7, shift=5.0, solver=solver))
    stepper = make_solver(solver, schedule.sigmas)
    x = torch.randn(2, 8, dtype=torch.float64)
    for i in range(7):
        sigma = float(schedule.sigmas[i])
        x = stepper.step(x, (x - x0) / sigma)
    torch.testing.assert_close(x, x0, rtol=0, atol=1e-9)
