"""sample()/generate(): seeding, expert switching, guidance, progress/cancel, part-way starts, I2V/TI2V."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kinema.core.progress import Cancelled, Progress
from kinema.core.sampling import (WAN_NEGATIVE_PROMPT, SamplerSettings, generate, make_schedule, sample,
                                  seeded_noise)

TEXT_DIM = 8


@dataclass(frozen=True)
class FakeConfig:
    in_dim: int = 16
    out_dim: int = 16
    patch_size: tuple = (1, 2, 2)


class FakeDiT(nn.Module):
    """Honours the DiT contract; records every call. Velocity depends on x, t, context and y."""

    def __init__(self, config=FakeConfig(), seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.config = config
        self.mix = nn.Parameter(torch.randn(config.out_dim, config.in_dim, generator=g) / config.in_dim)
        self.calls = []

    def forward(self, x, t, context, *, y=None, clip_fea=None):
        self.calls.append({"t": t.clone(), "context": context, "y": y})
        inp = x if y is None else torch.cat([x, y], dim=1)  # [B, in_dim, T, H, W]
        v = torch.einsum("oc,bcthw->bothw", self.mix, inp)
        text = torch.stack([c.mean() for c in context]) if isinstance(context, list) else context.mean((1, 2))
        t_mean = t.float().reshape(t.shape[0], -1).mean(1) / 1000
        return v + (text + t_mean)[:, None, None, None, None]


class ConstantDiT(nn.Module):
    """Velocity = the context's first value everywhere (so guided velocity = a closed form)."""

    def __init__(self, model_type="t2v"):
        super().__init__()
        self.config = FakeConfig(in_dim=36 if model_type == "i2v" else 16)
        self.calls = []

    def forward(self, x, t, context, *, y=None, clip_fea=None):
        self.calls.append(float(t[0]))
        return torch.full_like(x, float(context[0].flatten()[0]))


class FakeTextEncoder:
    def __init__(self):
        self.prompts = []

    def encode(self, prompts):
        self.prompts.extend(prompts)
        return [torch.full((len(p) % 5 + 1, TEXT_DIM), float(len(p) % 7)) for p in prompts]


class FakeVAE:
    """Wan-shaped encode: 1 + 4k frames -> 1 + k latent frames, spatial stride, z channels."""

    def __init__(self, z_dim, stride):
        self.z_dim, self.stride = z_dim, stride

    def encode(self, video):
        lat = F.avg_pool3d(video[:, :, ::4], (1, self.stride, self.stride))  # [B, 3, T_lat, h, w]
        return lat.repeat(1, self.z_dim // 3 + 1, 1, 1, 1)[:, :self.z_dim]


def contexts(batch=1):
    g = torch.Generator().manual_seed(3)
    return [torch.randn(4, TEXT_DIM, generator=g)] * batch, [torch.randn(6, TEXT_DIM, generator=g)] * batch


SHAPE = (1, 16, 3, 4, 6)


# ---- seeding -------------------------------------------------------------------------------------------

def test_seeded_noise_is_the_cpu_generator_draw():
    expected = torch.randn(SHAPE, generator=torch.Generator().manual_seed(123))
    assert torch.equal(seeded_noise(SHAPE, 123), expected)


@pytest.mark.parametrize("solver", ["unipc", "euler", "dpmpp_2m"])
def test_seeded_sampling_is_bit_identical(solver):
    pos, neg = contexts()
    settings = SamplerSettings(steps=4, solver=solver, seed=7)
    first = sample(FakeDiT(), pos, neg, settings=settings, shape=SHAPE)
    second = sample(FakeDiT(), pos, neg, settings=settings, shape=SHAPE)
    assert torch.equal(first, second)
    other = sample(FakeDiT(), pos, neg, settings=SamplerSettings(steps=4, solver=solver, seed=8), shape=SHAPE)
    assert not torch.equal(first, other)


@pytest.mark.gpu
def test_same_result_on_cuda_and_cpu():
    # The noise is drawn on the CPU, so a CUDA run starts from the same sample as a CPU run.
    pos, neg = contexts()
    settings = SamplerSettings(steps=4, seed=3)
    cpu = sample(FakeDiT(), pos, neg, settings=settings, shape=SHAPE, device="cpu")
    cuda = sample(FakeDiT().cuda(), pos, neg, settings=settings, shape=SHAPE, device="cuda")
    torch.testing.assert_close(cuda.cpu(), cpu, rtol=1e-4, atol=1e-4)


# ---- guidance and experts ------------------------------------------------------------------------------

def constant_contexts():
    return [torch.ones(2, TEXT_DIM)], [torch.zeros(3, TEXT_DIM)]  # v_pos = 1, v_neg = 0 -> guided = cfg


def test_guided_velocity_uses_cfg_closed_form():
    # Euler with a constant guided velocity g: x_end = noise + (0 - sigma_0) * g.
    pos, neg = constant_contexts()
    settings = SamplerSettings(steps=5, cfg=3.5, solver="euler", seed=1)
    out = sample(ConstantDiT(), pos, neg, settings=settings, shape=SHAPE)
    sigma0 = float(make_schedule(settings).sigmas[0])
    torch.testing.assert_close(out, seeded_noise(SHAPE, 1) - sigma0 * 3.5)


def test_cfg_one_skips_the_negative_pass():
    pos, _ = constant_contexts()
    dit = ConstantDiT()
    sample(dit, pos, None, settings=SamplerSettings(steps=3, cfg=1.0), shape=SHAPE)
    assert len(dit.calls) == 3


@pytest.mark.parametrize("model_type,shift,high_steps", [("t2v", 12.0, 26), ("i2v", 5.0, 15)])
def test_expert_switch_counts(model_type, shift, high_steps):
    # wan_models.md 7.3 sanity values: 40 steps; boundary 875 (T2V) / 900 (I2V, in_dim > out_dim) by default.
    pos, neg = constant_contexts()
    high, low = ConstantDiT(model_type), ConstantDiT(model_type)
    settings = SamplerSettings(steps=40, shift=shift, cfg=4.0, cfg_low_noise=3.0, solver="euler")
    out = sample(high, pos, neg, settings=settings, shape=SHAPE, dit_low_noise=low)
    boundary = 875 if model_type == "t2v" else 900
    assert len(high.calls) == 2 * high_steps and len(low.calls) == 2 * (40 - high_steps)
    assert all(t >= boundary for t in high.calls) and all(t < boundary for t in low.calls)
    # Each expert's own cfg: x_end = noise - sum(delta_sigma_i * cfg_i).
    sigmas = make_schedule(settings).sigmas.tolist()
    drift = sum((sigmas[i] - sigmas[i + 1]) * (4.0 if i < high_steps else 3.0) for i in range(40))
    torch.testing.assert_close(out, seeded_noise(SHAPE, 0) - drift)


def test_explicit_boundary_overrides_model_type():
    pos, _ = constant_contexts()
    high, low = ConstantDiT("i2v"), ConstantDiT("i2v")
    sample(high, pos, None, settings=SamplerSettings(steps=40, shift=12.0, cfg=1.0, boundary=0.875),
           shape=SHAPE, dit_low_noise=low)
    assert len(high.calls) == 26


# ---- progress and cancel -------------------------------------------------------------------------------

def test_progress_once_per_step_with_preview():
    seen = []
    progress = Progress(on_step=lambda done, total, preview: seen.append((done, total, preview.shape)))
    pos, neg = contexts()
    sample(FakeDiT(), pos, neg, settings=SamplerSettings(steps=6), shape=SHAPE, progress=progress)
    assert seen == [(i, 6, torch.Size(SHAPE)) for i in range(1, 7)]


def test_preview_is_the_x0_estimate():
    # With v = (x - x0) / sigma (exact flow to one point), the preview equals x0 at every step.
    x0 = torch.randn(SHAPE)
    previews = []

    class ExactDiT(nn.Module):
        def forward(self, x, t, context, *, y=None, clip_fea=None):
            sigma = float(schedule.sigmas[len(previews)])
            return (x - x0) / sigma

    settings = SamplerSettings(steps=3, cfg=1.0)
    schedule = make_schedule(settings)
    sample(ExactDiT(), contexts()[0], None, settings=settings, shape=SHAPE,
           progress=Progress(on_step=lambda d, t, p: previews.append(p)))
    for preview in previews:
        torch.testing.assert_close(preview, x0, rtol=0, atol=1e-5)


def test_cancel_between_steps():
    checks = []

    def check_cancel():
        checks.append(1)
        if len(checks) == 4:  # once before the loop, then after steps 1, 2, 3
            raise Cancelled("stop")

    dit = ConstantDiT()
    with pytest.raises(Cancelled):
        sample(dit, constant_contexts()[0], None, settings=SamplerSettings(steps=10, cfg=1.0), shape=SHAPE,
               progress=Progress(check_cancel=check_cancel))
    assert len(dit.calls) == 3


# ---- part-way starts -----------------------------------------------------------------------------------

def test_denoise_takes_the_tail_of_a_longer_schedule():
    full = make_schedule(SamplerSettings(steps=20, shift=5.0))
    part = make_schedule(SamplerSettings(steps=10, shift=5.0, denoise=0.5))
    assert torch.equal(part.sigmas, full.sigmas[10:]) and torch.equal(part.timesteps, full.timesteps[10:])


def test_start_step_takes_the_tail_of_the_same_schedule():
    full = make_schedule(SamplerSettings(steps=12))
    part = make_schedule(SamplerSettings(steps=12, start_step=5))
    assert torch.equal(part.sigmas, full.sigmas[5:]) and part.num_steps == 7


def test_start_sigma_keeps_the_shifted_shape():
    shift = 5.0
    sigmas = make_schedule(SamplerSettings(steps=8, shift=shift, start_sigma=0.6)).sigmas.double().numpy()
    assert sigmas[0] == pytest.approx(0.6, abs=1e-7) and sigmas[-1] == 0 and len(sigmas) == 9
    unshifted = sigmas / (shift - (shift - 1) * sigmas)  # inverse shift: linear in the step index
    np.testing.assert_allclose(np.diff(unshifted), np.diff(unshifted)[0], atol=1e-6)


@pytest.mark.parametrize("start", [dict(denoise=0.4), dict(start_sigma=0.3), dict(start_step=7)])
def test_partial_start_noises_the_latents_to_the_first_sigma(start):
    # A zero velocity leaves the start sample unchanged: (1 - s) * latents + s * noise.
    class ZeroDiT(nn.Module):
        def forward(self, x, t, context, *, y=None, clip_fea=None):
            return torch.zeros_like(x)

    settings = SamplerSettings(steps=10, cfg=1.0, solver="euler", seed=5, **start)
    latents = torch.randn(SHAPE)
    out = sample(ZeroDiT(), contexts()[0], None, settings=settings, latents=latents)
    s = float(make_schedule(settings).sigmas[0])
    torch.testing.assert_close(out, (1 - s) * latents + s * seeded_noise(SHAPE, 5))


# ---- generate: text, shapes, image conditioning --------------------------------------------------------

def test_generate_t2v_default_negative_and_latent_shape():
    enc, dit = FakeTextEncoder(), FakeDiT()
    out = generate(dit, enc, "a cat", width=48, height=32, frames=9, settings=SamplerSettings(steps=2))
    assert out.shape == (1, 16, 3, 4, 6)
    assert enc.prompts == ["a cat", WAN_NEGATIVE_PROMPT]
    assert WAN_NEGATIVE_PROMPT.startswith("色调艳丽，过曝") and WAN_NEGATIVE_PROMPT.endswith("倒着走")
    enc = FakeTextEncoder()
    generate(dit, enc, "a cat", "", width=48, height=32, frames=9, settings=SamplerSettings(steps=2))
    assert enc.prompts == ["a cat", ""]
    enc = FakeTextEncoder()
    generate(dit, enc, "a cat", width=48, height=32, frames=9, settings=SamplerSettings(steps=2, cfg=1.0))
    assert enc.prompts == ["a cat"]


def test_generate_is_reproducible():
    run = lambda: generate(FakeDiT(), FakeTextEncoder(), "x", width=32, height=32, frames=5,
                           settings=SamplerSettings(steps=3, seed=11))
    assert torch.equal(run(), run())


def test_i2v_mask_and_y_channels():
    # Wan2.1/2.2 I2V: y = 4 mask channels (latent frame 0 all ones) + 16 image-latent channels.
    dit = FakeDiT(FakeConfig(in_dim=36, out_dim=16))
    image = torch.rand(3, 20, 30) * 2 - 1
    out = generate(dit, FakeTextEncoder(), "x", width=48, height=32, frames=9, settings=SamplerSettings(steps=2),
                   vae=FakeVAE(16, 8), start_image=image)
    assert out.shape == (1, 16, 3, 4, 6)
    y = dit.calls[0]["y"]
    assert y.shape == (1, 20, 3, 4, 6)
    assert torch.equal(y[:, :4, 0], torch.ones(1, 4, 4, 6)) and torch.equal(y[:, :4, 1:], torch.zeros(1, 4, 2, 4, 6))
    assert all(call["y"] is y for call in dit.calls)  # cond and uncond passes get the same y


def test_latent_frame_mask_for_first_and_last_frame():
    # wan_models.md 8.3: frames 0 and F-1 known -> latent frame 0 all channels, last latent frame channel 3.
    from kinema.core.sampling.conditioning import latent_frame_mask

    known = torch.zeros(9)
    known[0] = known[-1] = 1
    mask = latent_frame_mask(known)  # [4, 3]
    expected = torch.tensor([[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 1]], dtype=mask.dtype)
    assert torch.equal(mask, expected)


def test_ti2v_keeps_the_image_frame_and_zeroes_its_timesteps():
    dit = FakeDiT(FakeConfig(in_dim=48, out_dim=48))
    vae = FakeVAE(48, 16)
    image = torch.rand(1, 3, 64, 64) * 2 - 1
    out = generate(dit, FakeTextEncoder(), "x", width=64, height=64, frames=9, settings=SamplerSettings(steps=3),
                   vae=vae, start_image=image)
    assert out.shape == (1, 48, 3, 4, 4)
    assert torch.equal(out[:, :, :1], vae.encode(image[:, :, None]))
    t = dit.calls[0]["t"]  # [B, L] with L = 3 frames * 2 * 2 tokens
    assert t.shape == (1, 12)
    assert torch.equal(t[0, :4], torch.zeros(4)) and torch.all(t[0, 4:] == 999)


# ---- errors --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    (dict(steps=0), "steps must be an integer >= 1"),
    (dict(steps=2.5), "steps must be an integer >= 1"),
    (dict(cfg=-1.0), "cfg must be a number >= 0"),
    (dict(cfg_low_noise=-0.5), "cfg_low_noise must be None or a number >= 0"),
    (dict(shift=0.0), "shift must be a number > 0"),
    (dict(solver="ddim"), "unknown solver 'ddim'; choose one of unipc, euler, dpmpp_2m"),
    (dict(sigma_grid="karras"), "unknown sigma_grid 'karras'"),
    (dict(seed=-1), "seed must be an integer in [0, 2**64)"),
    (dict(denoise=0.0), "denoise must be in (0, 1]"),
    (dict(denoise=1.5), "denoise must be in (0, 1]"),
    (dict(start_sigma=1.0), "start_sigma must be None or in (0, 1)"),
    (dict(steps=5, start_step=5), "start_step must be None or an integer in [0, steps=5)"),
    (dict(denoise=0.5, start_step=1), "give only one way to start part-way, got denoise and start_step"),
    (dict(boundary=1.0), "boundary must be None or in (0, 1)"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ValueError) as err:
        SamplerSettings(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("size,message", [
    (dict(frames=80, width=48, height=32), "frames must be 4k+1 (1, 5, ..., 81, ...), got 80; nearest valid: 77 or 81"),
    (dict(frames=9, width=50, height=32), "width must be a multiple of 16 for 16-channel latents, got 50; "
                                           "nearest valid: 48 or 64"),
    (dict(frames=9, width=48, height=8), "height must be a multiple of 16 for 16-channel latents, got 8; "
                                          "nearest valid: 16"),
    (dict(frames=0, width=48, height=32), "frames must be a positive integer"),
])
def test_bad_video_size(size, message):
    with pytest.raises(ValueError) as err:
        generate(FakeDiT(), FakeTextEncoder(), "x", settings=SamplerSettings(steps=1), **size)
    assert message in str(err.value)


def test_ti2v_size_must_be_multiple_of_32():
    dit = FakeDiT(FakeConfig(in_dim=48, out_dim=48))
    with pytest.raises(ValueError, match="width must be a multiple of 32 for 48-channel latents, got 48; "
                                         "nearest valid: 32 or 64"):
        generate(dit, FakeTextEncoder(), "x", width=48, height=64, frames=5)


def test_generate_errors():
    enc = FakeTextEncoder()
    i2v = FakeDiT(FakeConfig(in_dim=36, out_dim=16))
    with pytest.raises(ValueError, match="image-to-video model .* pass start_image= and vae="):
        generate(i2v, enc, "x", width=32, height=32, frames=5)
    with pytest.raises(ValueError, match="does not take a start image"):
        generate(FakeDiT(), enc, "x", width=32, height=32, frames=5, start_image=torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="start_image needs the VAE"):
        generate(i2v, enc, "x", width=32, height=32, frames=5, start_image=torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match=r"start_image must be a \[3, H, W\]"):
        generate(i2v, enc, "x", width=32, height=32, frames=5, start_image=torch.zeros(8, 8, 3),
                 vae=FakeVAE(16, 8))
    with pytest.raises(ValueError, match="pass latent_channels=16"):
        generate(lambda x, t, c, y=None: x, enc, "x", width=32, height=32, frames=5)
    # Without a config, latent_channels decides the latent shape.
    out = generate(lambda x, t, c, y=None: x, enc, "x", width=32, height=32, frames=5, latent_channels=16,
                   settings=SamplerSettings(steps=1, cfg=1.0))
    assert out.shape == (1, 16, 2, 4, 4)
    with pytest.raises(ValueError, match="prompt must be a string"):
        generate(FakeDiT(), enc, ["x"], width=32, height=32, frames=5)


def test_sample_errors():
    pos, neg = contexts()
    settings = SamplerSettings(steps=2)
    with pytest.raises(ValueError, match="exactly one of shape= .* or latents="):
        sample(FakeDiT(), pos, neg, settings=settings)
    with pytest.raises(ValueError, match="cfg != 1 needs a negative conditioning"):
        sample(FakeDiT(), pos, None, settings=settings, shape=SHAPE)
    with pytest.raises(ValueError, match="refine existing latents; pass latents="):
        sample(FakeDiT(), pos, neg, settings=SamplerSettings(denoise=0.5), shape=SHAPE)
    with pytest.raises(ValueError, match=r"shape/latents must be \[B, C, T, H, W\]"):
        sample(FakeDiT(), pos, neg, settings=settings, shape=(16, 3, 4, 6))
