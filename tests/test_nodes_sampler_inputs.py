"""KinemaSampler's optional step_cache, branch, long_video and start_sigma inputs on tiny checkpoints, against
core.sampling.sample called directly (cached models from core.cache) or a sampling loop written out here
(branch inputs handed to the DiT by hand), and the combinations it refuses."""
from __future__ import annotations

import pytest
import torch

from kinema.core.cache import StepCacheSettings, with_step_cache
from kinema.core.sampling import SamplerSettings, make_schedule, sample, seeded_noise
from kinema.core.sampling.loop import run_loop
from kinema.nodes import host
from kinema.nodes.conditioning_pose import KinemaVACEConditioning
from kinema.nodes.latent import KinemaEmptyLatent
from kinema.nodes.loaders import KinemaDiTLoader, KinemaTextEncoderLoader, KinemaVAELoader
from kinema.nodes.longvideo import KinemaLongVideoSettings, KinemaPromptSchedule
from kinema.nodes.sampler import KinemaSampler
from kinema.nodes.step_cache import KinemaStepCache
from kinema.nodes.text_encode import KinemaTextEncode
from raw_latents import to_normalised, to_raw
from tiny_model_folders import TEXT_ENCODER, model_root  # noqa: F401  (fixture)

T2V, VACE = "wan2.1_t2v_1.3B_fp16.safetensors", "wan2.1_vace_1.3B_fp16.safetensors"
SAMPLER = dict(seed=5, steps=6, cfg=1.0, shift=5.0, solver="euler", denoise=1.0, boundary=0.0, cfg_low_noise=0.0)
W, H, FRAMES = 64, 32, 5


@pytest.fixture(scope="module")
def models(model_root, tmp_path_factory):
    host.configure(models=[model_root], output=tmp_path_factory.mktemp("out"))
    vae = KinemaVAELoader().load("wan_2.1_vae.safetensors", "default")[0]
    encoder = KinemaTextEncoderLoader().load(TEXT_ENCODER, "default")[0]
    conditioning = KinemaTextEncode().encode(encoder, "a dancer", "", unload_encoder=True)[0]
    dits = {name: KinemaDiTLoader().load(name, "default", "sdpa")[0] for name in (T2V, VACE)}
    latent = KinemaEmptyLatent().make(vae, "custom (width x height)", W, H, FRAMES, 0.0, 16)[0]
    yield dict(vae=vae, encoder=encoder, conditioning=conditioning, dits=dits, latent=latent)
    host.configure()


def _settings(**changes) -> SamplerSettings:
    options = {k: v for k, v in SAMPLER.items() if k not in ("boundary", "cfg_low_noise")}
    return SamplerSettings(**{**options, **changes})


def test_step_cache_input_runs_the_cached_models(models):
    dit, cond, latent = models["dits"][T2V], models["conditioning"], models["latent"]
    plain = KinemaSampler().sample(dit, cond, latent, **SAMPLER)[0]["samples"]
    never = KinemaStepCache().settings(0.0, 1, -1)[0]
    assert torch.equal(KinemaSampler().sample(dit, cond, latent, **SAMPLER, step_cache=never)[0]["samples"], plain)

    eager = KinemaStepCache().settings(5.0, 1, -1)[0]
    cached = KinemaSampler().sample(dit, cond, latent, **SAMPLER, step_cache=eager)[0]["samples"]
    model, _, cache = with_step_cache(StepCacheSettings(5.0, 1, -1), 6, dit.model,
                                      sigmas=make_schedule(_settings()).sigmas.tolist())
    expected = sample(model, [cond.positive], [cond.negative], settings=_settings(), shape=tuple(latent["samples"].shape))
    torch.testing.assert_close(cached, to_raw(expected))
    assert cache.stats.evaluations < cache.stats.calls and not torch.allclose(cached, plain)


def _vace_branch(models):
    control = torch.rand(FRAMES, H, W, 3, generator=torch.Generator().manual_seed(1))
    reference = torch.rand(1, 20, 20, 3, generator=torch.Generator().manual_seed(2))
    return KinemaVACEConditioning().build(models["vae"], W, H, FRAMES, 1.0, control_video=control,
                                          reference_image=reference)[0]


def test_branch_sets_the_shape_expands_the_batch_and_drops_the_reference_frames(models):
    dit, cond = models["dits"][VACE], models["conditioning"]
    branch = _vace_branch(models)
    batch_of_two = {"samples": torch.zeros(2, 16, 9, 2, 2)}  # only the batch of the latent counts
    out = KinemaSampler().sample(dit, cond, batch_of_two, **{**SAMPLER, "steps": 2}, branch=branch)[0]["samples"]
    assert branch.reference_frames == 1 and out.shape == (2, 16, 2, H // 8, W // 8)

    # The same run written out: seeded noise of the branch's shape, the DiT given the branch inputs directly.
    settings = _settings(steps=2)
    schedule = make_schedule(settings)
    kwargs = {"vace_context": branch.inputs["vace_context"].repeat(2, 1, 1, 1, 1), "vace_strength": 1.0}
    context = [cond.positive] * 2
    expected = run_loop(seeded_noise((2, *branch.latent_shape[1:]), settings.seed), schedule, "euler",
                        lambda x, i: dit.model(x, schedule.timesteps[i].expand(2), context, **kwargs))
    torch.testing.assert_close(out, to_raw(expected[:, :, 1:]))


def test_branch_refuses_denoise_and_start_image(models):
    dit, cond, latent = models["dits"][VACE], models["conditioning"], models["latent"]
    branch = _vace_branch(models)
    with pytest.raises(ValueError, match="vace branch samples a new video from noise; set denoise to 1.0"):
        KinemaSampler().sample(dit, cond, latent, **{**SAMPLER, "denoise": 0.5}, branch=branch)
    with pytest.raises(ValueError, match="vace branch brings its own reference; disconnect start_image"):
        KinemaSampler().sample(dit, cond, latent, **SAMPLER, start_image=torch.rand(1, 8, 8, 3), vae=models["vae"],
                               branch=branch)


def _long_video(models, schedule_text: str):
    schedule = KinemaPromptSchedule().encode(models["encoder"], schedule_text, 16)[0]
    return KinemaLongVideoSettings().settings(5, 4, "pyramid", True, 0.2, prompt_schedule=schedule)[0]


def test_long_video_input_is_core_sample_with_the_schedule_per_video(models):
    dit, cond = models["dits"][T2V], models["conditioning"]
    long = _long_video(models, "0: a dancer\n0.4: a red ball")  # 9 frames: 2 windows, the second one's prompt
    batch_of_two = {"samples": torch.zeros(2, 16, 3, H // 8, W // 8)}  # 9 frames
    options = {**SAMPLER, "steps": 2}
    out = KinemaSampler().sample(dit, cond, batch_of_two, **options, long_video=long)[0]["samples"]
    prompts = long.prompts.encoded([[s.positive] * 2 for s in long.prompts.segments])
    expected = sample(dit.model, prompts, [cond.negative] * 2, settings=_settings(steps=2), long_video=long.settings,
                      shape=(2, 16, 3, H // 8, W // 8))
    torch.testing.assert_close(out, to_raw(expected))
    one_prompt = KinemaLongVideoSettings().settings(5, 4, "pyramid", True, 0.2)[0]
    plain = KinemaSampler().sample(dit, cond, batch_of_two, **options, long_video=one_prompt)[0]["samples"]
    assert not torch.allclose(out, plain), "the prompt schedule was not used"


def test_start_sigma_refines_the_input_latent_like_core_sample(models):
    dit, cond = models["dits"][T2V], models["conditioning"]
    start = torch.randn(1, 16, 2, H // 8, W // 8, generator=torch.Generator().manual_seed(4))
    out = KinemaSampler().sample(dit, cond, {"samples": start}, **SAMPLER, start_sigma=0.4)[0]["samples"]
    expected = sample(dit.model, [cond.positive], [cond.negative], settings=_settings(start_sigma=0.4),
                      latents=to_normalised(start))
    torch.testing.assert_close(out, to_raw(expected))
    fresh = KinemaSampler().sample(dit, cond, {"samples": start}, **SAMPLER)[0]["samples"]
    assert not torch.allclose(out, fresh), "start_sigma was ignored"


def test_long_video_runs_with_the_step_cache_and_with_a_branch(models):
    dit, cond, latent = models["dits"][T2V], models["conditioning"], models["latent"]
    long = KinemaLongVideoSettings().settings(5, 4, "pyramid", True, 0.0)[0]
    nine_frames = {"samples": torch.zeros(1, 16, 3, H // 8, W // 8)}  # 2 windows of 2 latent frames
    cache = KinemaStepCache().settings(5.0, 1, -1)[0]
    out = KinemaSampler().sample(dit, cond, nine_frames, **SAMPLER, step_cache=cache, long_video=long)[0]["samples"]
    expected = sample(dit.model, [cond.positive], [cond.negative], settings=_settings(), shape=(1, 16, 3, H // 8, W // 8),
                      long_video=long.settings, step_cache=cache)
    torch.testing.assert_close(out, to_raw(expected), rtol=0, atol=0)
    uncached = KinemaSampler().sample(dit, cond, nine_frames, **SAMPLER, long_video=long)[0]["samples"]
    assert not torch.equal(out, uncached), "the step cache skipped nothing"

    vace = KinemaSampler().sample(models["dits"][VACE], cond, latent, **{**SAMPLER, "steps": 2},
                                  branch=_vace_branch(models), long_video=long)[0]["samples"]
    assert vace.shape == (1, 16, 2, H // 8, W // 8) and torch.isfinite(vace).all()


def test_start_sigma_refusal(models):
    dit, cond, latent = models["dits"][T2V], models["conditioning"], models["latent"]
    with pytest.raises(ValueError, match="denoise 0.5 and start_sigma 0.4 both start part-way; use one"):
        KinemaSampler().sample(dit, cond, latent, **{**SAMPLER, "denoise": 0.5}, start_sigma=0.4)
