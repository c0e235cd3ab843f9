"""core.longvideo: window plan and blend weights, FreeNoise, drift matching (closed form), prompt
schedules, and the windowed sampler against plain `sample` (exact for one window)."""
from __future__ import annotations

import pytest
import torch

import test_sampling_pipeline as plain  # FakeDiT & co. (module import, so its tests are not collected twice)
from kinema.core.longvideo import (ChannelStats, LongVideoSettings, PromptSchedule, Window, blend_coefficients,
                                   freenoise, match_statistics, parse_schedule, plan_windows)
from kinema.core.sampling.drift import matched_velocity
from kinema.core.sampling import ImageConditioning, SamplerSettings, make_schedule, sample, seeded_noise
from kinema.core.sampling.conditioning import ti2v_conditioning

SHAPE = (1, 16, 13, 4, 6)


# ---- windows -------------------------------------------------------------------------------------

def test_short_clip_is_one_window():
    assert plan_windows(5, 21, 7) == [Window(0, 5)]
    assert plan_windows(21, 21, 7) == [Window(0, 21)]


def test_windows_cover_the_clip_with_the_overlap_and_end_flush():
    windows = plan_windows(13, 5, 2)
    assert [(w.start, w.end) for w in windows] == [(0, 5), (3, 8), (6, 11), (8, 13)]
    for a, b in zip(windows, windows[1:]):
        assert a.end - b.start >= 2


@pytest.mark.parametrize("blend", ["pyramid", "linear", "flat"])
def test_shares_of_every_frame_sum_to_one(blend):
    windows = plan_windows(13, 5, 2)
    shares = blend_coefficients(windows, 13, blend)
    total = torch.zeros(13, dtype=torch.float64)
    for w, s in zip(windows, shares):
        assert s.shape == (w.length,) and bool((s >= 0).all())
        total[w.start:w.end] += s.double()
    assert torch.allclose(total, torch.ones(13, dtype=torch.float64), atol=1e-6)


def test_one_window_shares_are_exactly_one():
    [share] = blend_coefficients([Window(0, 7)], 7, "pyramid")
    assert torch.equal(share, torch.ones(7))


def test_pyramid_trusts_the_window_that_sees_a_frame_most_centrally():
    windows = [Window(0, 5), Window(3, 8)]
    first, second = blend_coefficients(windows, 8, "pyramid")
    # frame 3: position 3 of the first window (weight 2), position 0 of the second (weight 1)
    assert first[3] == pytest.approx(2 / 3) and second[0] == pytest.approx(1 / 3)


def test_linear_blend_ramps_only_across_the_overlap():
    first, second = blend_coefficients([Window(0, 5), Window(3, 8)], 8, "linear")
    assert first[:3].tolist() == [1, 1, 1] and second[2:].tolist() == [1, 1, 1]
    assert first[3] > first[4] and second[0] < second[1]


def test_excluded_frames_get_no_share():
    first, second = blend_coefficients([Window(0, 5), Window(3, 8)], 8, "flat", frozenset({(1, 0)}))
    assert second[0] == 0 and first[3] == 1


def test_frames_no_window_covers_are_an_error():
    # frame 3 is seen only by the second window, which excludes it
    with pytest.raises(ValueError, match="latent frames \\[3\\] are covered by no window; raise the overlap"):
        blend_coefficients([Window(0, 3), Window(3, 6)], 6, "flat", frozenset({(1, 0)}))


# ---- FreeNoise -----------------------------------------------------------------------------------

def test_freenoise_of_one_window_is_plain_seeded_noise():
    shape = (1, 4, 5, 2, 2)
    assert torch.equal(freenoise(shape, 7, plan_windows(5, 21, 7)), seeded_noise(shape, 7))


def test_every_window_holds_the_first_windows_noise_frames_once():
    shape = (2, 3, 23, 2, 2)
    windows = plan_windows(23, 6, 2)  # the last window is shifted back off the stride grid
    noise = freenoise(shape, 3, windows)
    assert torch.equal(noise[:, :, :6], seeded_noise((2, 3, 6, 2, 2), 3))
    base = [noise[:, :, j] for j in range(6)]
    for w in windows:
        matches = sorted(next(i for i, b in enumerate(base) if torch.equal(noise[:, :, t], b))
                         for t in range(w.start, w.end))
        assert matches == list(range(6)), f"window {w} is not a permutation of the first window's noise"


def test_freenoise_is_seeded_and_shuffles():
    windows = plan_windows(40, 8, 2)
    a, b = freenoise((1, 2, 40, 2, 2), 1, windows), freenoise((1, 2, 40, 2, 2), 1, windows)
    assert torch.equal(a, b)
    periodic = all(torch.equal(a[:, :, t], a[:, :, t - 6]) for t in range(8, 40))
    assert not periodic  # new frames are shuffled, not a plain repeat with the stride


# ---- drift ---------------------------------------------------------------------------------------

def _stats(x):
    s = ChannelStats.of(x)
    return s.mean.flatten(), s.std.flatten()


def test_full_matching_gives_the_reference_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 5, 5, generator=g) * 3 + 1
    ref = torch.randn(2, 3, 6, 5, 5, generator=g) * 0.5 - 2
    out = match_statistics(x, ChannelStats.of(ref), 1.0)
    for got, want in zip(_stats(out), _stats(ref)):
        assert torch.allclose(got, want, atol=1e-4)


def test_partial_matching_moves_mean_and_std_linearly():
    g = torch.Generator().manual_seed(1)
    x, ref = torch.randn(1, 4, 3, 4, 4, generator=g) * 2, torch.randn(1, 4, 3, 4, 4, generator=g) + 3
    (m0, s0), (m1, s1) = _stats(x), _stats(ref)
    m, s = _stats(match_statistics(x, ChannelStats.of(ref), 0.25))
    assert torch.allclose(m, m0 + 0.25 * (m1 - m0), atol=1e-4)
    assert torch.allclose(s, s0 + 0.25 * (s1 - s0), atol=1e-4)
    assert match_statistics(x, ChannelStats.of(ref), 0.0) is x


def test_drift_matching_acts_on_the_clean_estimate():
    g = torch.Generator().manual_seed(2)
    xw, vw, sigma = torch.randn(1, 2, 3, 4, 4, generator=g), torch.randn(1, 2, 3, 4, 4, generator=g), 0.6
    references = {0: ChannelStats.of(torch.randn(1, 2, 3, 4, 4, generator=g) + 5)}
    v = matched_velocity(xw, vw, sigma, references, 0, 1.0)
    for got, want in zip(_stats(xw - sigma * v), (references[0].mean.flatten(), references[0].std.flatten())):
        assert torch.allclose(got, want, atol=1e-4)
    fresh: dict = {}
    assert matched_velocity(xw, vw, sigma, fresh, 1, 1.0) is vw and 1 in fresh  # first window of a prompt = reference


# ---- prompt schedule -----------------------------------------------------------------------------

def test_parse_schedule_in_seconds():
    schedule = parse_schedule("0: a red ball\n\n# comment\n2.5s: a blue ball\n 10 : a green ball ", fps=16)
    assert [(s.start_frame, s.prompt) for s in schedule.segments] == [(0, "a red ball"), (40, "a blue ball"),
                                                                      (160, "a green ball")]


@pytest.mark.parametrize("text,message", [
    ("", "needs at least one prompt"),
    ("1: late start", "first prompt must start at 0 s"),
    ("0: a\n3: b\n2: c", "must increase line by line"),
    ("0: a\nthen: b", "line 2 'then: b' is not '<start seconds>: <prompt>'"),
])
def test_schedule_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_schedule(text, fps=16)


def test_window_takes_the_prompt_at_its_middle():
    schedule = parse_schedule("0: a\n2: b", fps=16)  # b from video frame 32 = latent frame 8
    assert schedule.index_for(Window(0, 5)) == 0
    assert schedule.index_for(Window(6, 11)) == 1  # middle latent 8 -> video frame 32


# ---- sampler -------------------------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["unipc", "euler", "dpmpp_2m"])
def test_one_window_is_exactly_plain_sampling(solver):
    positive, negative = plain.contexts()
    settings = SamplerSettings(steps=4, seed=5, solver=solver)
    want = sample(plain.FakeDiT(), positive, negative, settings=settings, shape=SHAPE)
    got = sample(plain.FakeDiT(), positive, negative, settings=settings,
                      long_video=LongVideoSettings(window=13, overlap=4, drift_strength=0.5), shape=SHAPE)
    assert torch.equal(got, want)


def test_one_window_refine_from_sigma_is_exactly_plain_refine():
    positive, negative = plain.contexts()
    latents = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))
    settings = SamplerSettings(steps=3, seed=2, start_sigma=0.6)
    want = sample(plain.FakeDiT(), positive, negative, settings=settings, latents=latents)
    got = sample(plain.FakeDiT(), positive, negative, settings=settings, latents=latents,
                      long_video=LongVideoSettings(window=16, overlap=2))
    assert torch.equal(got, want)


def test_one_window_ti2v_is_exactly_plain_sampling():
    dit = plain.FakeDiT(plain.FakeConfig(in_dim=48, out_dim=48))
    shape = (1, 48, 4, 4, 4)
    image = ti2v_conditioning(torch.randn(1, 48, 1, 4, 4, generator=torch.Generator().manual_seed(1)), 4)
    positive, negative = plain.contexts()
    settings = SamplerSettings(steps=3)
    want = sample(dit, positive, negative, settings=settings, shape=shape, image=image)
    got = sample(dit, positive, negative, settings=settings, shape=shape, image=image,
                      long_video=LongVideoSettings(window=4, overlap=1))
    assert torch.equal(got, want)


@pytest.mark.parametrize("blend", ["pyramid", "linear", "flat"])
def test_windows_of_a_frame_local_model_blend_back_to_plain_sampling(blend):
    # FakeDiT's velocity at a frame depends on that frame only (t2v), so every window agrees with the
    # full pass where they overlap and the blend must reproduce plain sampling up to rounding.
    positive, negative = plain.contexts()
    settings = SamplerSettings(steps=4, seed=5)
    want = sample(plain.FakeDiT(), positive, negative, settings=settings, shape=SHAPE)
    got = sample(plain.FakeDiT(), positive, negative, settings=settings, shape=SHAPE,
                      long_video=LongVideoSettings(window=5, overlap=2, blend=blend, freenoise=False))
    assert torch.allclose(got, want, atol=1e-5)


def test_each_step_runs_every_window_at_its_own_positions():
    dit = plain.FakeDiT()
    positive, negative = plain.contexts()
    sample(dit, positive, negative, settings=SamplerSettings(steps=2, cfg=1.0), shape=SHAPE,
                long_video=LongVideoSettings(window=5, overlap=2))
    assert len(dit.calls) == 2 * 4  # 2 steps x 4 windows (13 frames, window 5, stride 3)
    frames = [c["t"].shape for c in dit.calls]
    assert len(set(frames)) == 1  # same per-call size whatever the clip length


def test_windows_take_their_scheduled_prompt():
    dit = plain.ConstantDiT()
    schedule = PromptSchedule(parse_schedule("0: a\n1.5: b", fps=16).segments).encoded(
        [[torch.full((2, 8), 1.0)], [torch.full((2, 8), 3.0)]])
    out = sample(dit, schedule, None, settings=SamplerSettings(steps=1, cfg=1.0, solver="euler"),
                      shape=SHAPE, long_video=LongVideoSettings(window=5, overlap=2, blend="flat", freenoise=False))
    # euler from sigma0 to 0: out = noise - sigma0 * v, and v is the window's prompt value (1 or 3)
    sigma0 = float(make_schedule(SamplerSettings(steps=1, solver="euler")).sigmas[0])
    v = ((seeded_noise(SHAPE, 0) - out) / sigma0).mean((0, 1, 3, 4))  # [T]
    # windows (0,5) (3,8) have middles at video frames 8, 20 (< 24: "a"); (6,11) (8,13) at 32, 40 ("b")
    assert v[:3].tolist() == pytest.approx([1, 1, 1], abs=1e-4)
    assert v[6] == pytest.approx(2, abs=1e-4)  # frames 6-7: one "a" window, one "b" window, flat blend
    assert v[8:].tolist() == pytest.approx([3] * 5, abs=1e-4)


class RecordingDiT(torch.nn.Module):
    def __init__(self, in_dim, out_dim=16):
        super().__init__()
        self.config = plain.FakeConfig(in_dim=in_dim, out_dim=out_dim)
        self.calls = []

    def forward(self, x, t, context, *, y=None, clip_fea=None):
        v = 0.3 * x + 0.1 * x.mean() + 0.01 * t.float().mean() / 1000
        self.calls.append(dict(x=x.clone(), t=t.clone(), y=None if y is None else y.clone(), v=v))
        return v


def _anchor(call, offset, sigma):
    return (call["x"] - sigma * call["v"])[:, :, offset]


def test_i2v_windows_continue_from_the_previous_windows_clean_estimate():
    dit = RecordingDiT(in_dim=36)
    shape = (1, 16, 8, 2, 2)
    y = torch.zeros(1, 20, 8, 2, 2)
    y[:, :4, 0] = 1
    y[:, 4:] = torch.randn(1, 16, 8, 2, 2, generator=torch.Generator().manual_seed(3))
    positive, _ = plain.contexts()
    settings = SamplerSettings(steps=2, cfg=1.0, solver="euler")
    sample(dit, positive, None, settings=settings, shape=shape, image=ImageConditioning(y=y),
                long_video=LongVideoSettings(window=5, overlap=2))
    sigma = float(make_schedule(settings).sigmas[0])
    first, second = dit.calls[0], dit.calls[1]  # step 0, windows (0, 5) and (3, 8)
    assert torch.equal(first["y"], y[:, :, 0:5])
    assert torch.equal(second["y"][:, :4, 0], torch.ones(1, 4, 2, 2))
    assert torch.equal(second["y"][:, :4, 1:], torch.zeros(1, 4, 4, 2, 2))
    assert torch.allclose(second["y"][:, 4:, 0], _anchor(first, 3, sigma))
    assert torch.equal(second["y"][:, 4:, 1:], y[:, 4:, 4:8])


def test_i2v_conditioning_of_the_first_window_only_is_enough():
    y = torch.zeros(1, 20, 8, 2, 2)
    y[:, :4, 0] = 1
    y[:, 4:] = torch.randn(1, 16, 8, 2, 2, generator=torch.Generator().manual_seed(3))
    positive, _ = plain.contexts()
    settings, long = SamplerSettings(steps=2, cfg=1.0, solver="euler"), LongVideoSettings(window=5, overlap=2)
    run = lambda y: sample(RecordingDiT(in_dim=36), positive, None, settings=settings,  # noqa: E731
                                shape=(1, 16, 8, 2, 2), image=ImageConditioning(y=y), long_video=long)
    whole, first = run(y), run(y[:, :, :5].clone())
    assert torch.allclose(whole[:, :, :3], first[:, :, :3])  # frames only the first window sees
    assert first.shape == whole.shape


def test_ti2v_windows_hold_the_anchor_as_a_known_frame():
    dit = RecordingDiT(in_dim=48, out_dim=48)
    shape = (1, 48, 8, 2, 2)
    image = ti2v_conditioning(torch.randn(1, 48, 1, 2, 2, generator=torch.Generator().manual_seed(4)), 8)
    positive, _ = plain.contexts()
    settings = SamplerSettings(steps=2, cfg=1.0, solver="euler")
    out = sample(dit, positive, None, settings=settings, shape=shape, image=image,
                      long_video=LongVideoSettings(window=5, overlap=2))
    sigma = float(make_schedule(settings).sigmas[0])
    first, second = dit.calls[0], dit.calls[1]
    assert torch.allclose(second["x"][:, :, 0], _anchor(first, 3, sigma))
    assert torch.equal(second["t"][0, :1], torch.zeros(1)) and bool((second["t"][0, 1:] > 0).all())
    assert torch.equal(out[:, :, :1], image.known_latent[:, :, :1])


def test_image_models_need_overlapping_windows():
    positive, _ = plain.contexts()
    with pytest.raises(ValueError, match="set overlap >= 1"):
        sample(RecordingDiT(in_dim=36), positive, None, settings=SamplerSettings(steps=1, cfg=1.0),
                    shape=(1, 16, 8, 2, 2), image=ImageConditioning(y=torch.zeros(1, 20, 8, 2, 2)),
                    long_video=LongVideoSettings(window=4, overlap=0))


@pytest.mark.parametrize("kwargs,message", [
    (dict(window=0), "window must be an integer >= 1"),
    (dict(window=5, overlap=5), "overlap must be an integer in \\[0, window=5\\)"),
    (dict(blend="cosine"), "unknown blend 'cosine'; choose one of pyramid, linear, flat"),
    (dict(drift_strength=2.0), "drift_strength must be in \\[0, 1\\]"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LongVideoSettings(**kwargs)
