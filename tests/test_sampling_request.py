"""The one sampling entry point (SamplingRequest -> run_sampling): long video composed with the Animate
and VACE branches on tiny random models, against a sampling loop written out here (the DiT called
directly with the branch inputs), and `kinema.generate` with long video and the step cache from Python."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import kinema
from kinema.core.dit import load_dit
from kinema.core.sampling import BranchConditioning, SamplerSettings, SamplingRequest, make_schedule, run_sampling
from kinema.core.sampling import seeded_noise
from kinema.core.sampling.long_video import LongVideoSettings
from kinema.core.sampling.loop import run_loop

from tiny_dit import FACE_SIZE, IMAGE_DIM, TEXT_DIM, save_tiny_dit

H, W = 4, 6  # latent size
SETTINGS = SamplerSettings(steps=3, cfg=3.0, shift=3.0, solver="unipc", seed=11)


@pytest.fixture(scope="module")
def dits(tmp_path_factory):
    root = tmp_path_factory.mktemp("dits")
    return {variant: load_dit(save_tiny_dit(root / variant, "comfy", variant)) for variant in ("animate", "vace")}


def _random(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def animate_branch(frames: int) -> BranchConditioning:
    """Animate inputs for `frames` video latent frames behind the photo's slot (random, Wan-shaped)."""
    inputs = {
        "y": _random(1, 20, 1 + frames, H, W, seed=1),
        "pose_latents": _random(1, 16, frames, H, W, seed=2),
        "face_pixels": _random(1, 3, 4 * (frames - 1) + 1, FACE_SIZE, FACE_SIZE, seed=3).clamp(-1, 1),
        "clip_fea": _random(1, 5, IMAGE_DIM, seed=4),
    }
    return BranchConditioning("animate", inputs, (1, 16, 1 + frames, H, W), reference_frames=1)


def vace_branch(frames: int, references: int = 1) -> BranchConditioning:
    inputs = {"vace_context": _random(1, 96, references + frames, H, W, seed=5), "vace_strength": 0.8}
    return BranchConditioning("vace", inputs, (1, 16, references + frames, H, W), reference_frames=references)


def _text():
    return [_random(7, TEXT_DIM, seed=6)], [_random(4, TEXT_DIM, seed=7)]


def written_out(dit, branch: BranchConditioning, batch: int = 1) -> torch.Tensor:
    """The plain run by hand: seeded noise of the branch's shape, the DiT given every branch input as it
    is, classifier-free guidance, the solver; the reference frames dropped at the end."""
    positive, negative = _text()
    schedule = make_schedule(SETTINGS)
    inputs = {k: v.expand(batch, *v.shape[1:]) if torch.is_tensor(v) else v for k, v in branch.inputs.items()}

    def velocity(x, i):
        t = schedule.timesteps[i].expand(batch)
        v_pos = dit(x, t, positive * batch, **inputs)
        # official Wan-Animate: the unguided pass sees face pixels of all -1 ("no face")
        faces = {"face_pixels": -torch.ones_like(inputs["face_pixels"])} if branch.kind == "animate" else {}
        v_neg = dit(x, t, negative * batch, **{**inputs, **faces})
        return v_neg + SETTINGS.cfg * (v_pos - v_neg)

    x = seeded_noise((batch, *branch.latent_shape[1:]), SETTINGS.seed)
    with torch.no_grad():
        return run_loop(x, schedule, SETTINGS.solver, velocity)[:, :, branch.reference_frames:]


def through_the_engine(dit, branch, long_video=None, batch: int = 1) -> torch.Tensor:
    positive, negative = _text()
    request = SamplingRequest(dit=dit, positive=positive * batch, negative=negative * batch, settings=SETTINGS,
                              shape=(batch, *branch.latent_shape[1:]), branch=branch, long_video=long_video)
    return run_sampling(request)


@pytest.mark.parametrize("kind", ["animate", "vace"])
def test_one_window_covering_every_frame_is_the_plain_run_exactly(dits, kind):
    branch = animate_branch(3) if kind == "animate" else vace_branch(3)
    expected = written_out(dits[kind], branch)
    assert torch.equal(through_the_engine(dits[kind], branch), expected)
    for window in (3, 8):  # exactly the clip, and longer than it
        one_window = LongVideoSettings(window=window, overlap=2, drift_strength=0.3)
        assert torch.equal(through_the_engine(dits[kind], branch, one_window), expected)


class Recording:
    """The DiT, keeping every call's inputs."""

    def __init__(self, dit):
        self.dit, self.config, self.calls = dit, dit.config, []

    def parameters(self):
        return self.dit.parameters()

    def __call__(self, x, t, context, **inputs):
        self.calls.append(dict(inputs, x=x))
        return self.dit(x, t, context, **inputs)


def test_long_animate_gives_every_window_its_own_slice_of_pose_face_and_guide(dits):
    branch = animate_branch(5)
    dit = Recording(dits["animate"])
    out = through_the_engine(dit, branch, LongVideoSettings(window=3, overlap=1, blend="linear"))
    assert out.shape == (1, 16, 5, H, W) and torch.isfinite(out).all()
    assert len(dit.calls) == SETTINGS.steps * 2 * 2  # steps x windows x guidance passes
    second = dit.calls[2]  # step 0, window 1 (video latent frames 2..4), positive pass
    y, pose, face = branch.inputs["y"], branch.inputs["pose_latents"], branch.inputs["face_pixels"]
    assert second["x"].shape[2] == 1 + 3  # the photo's slot leads the window
    assert torch.equal(second["y"], torch.cat([y[:, :, :1], y[:, :, 3:6]], dim=2))
    assert torch.equal(second["pose_latents"], pose[:, :, 2:5])
    # latent frame 2 ends at pixel frame 8; the window's 3 latent frames take 4 * 2 + 1 face frames
    assert torch.equal(second["face_pixels"], face[:, :, 8:17])
    assert torch.equal(second["clip_fea"], branch.inputs["clip_fea"])
    assert not torch.allclose(out, written_out(dits["animate"], branch), atol=1e-3), "windows changed nothing"


def test_long_vace_keeps_the_reference_frames_in_front_of_every_window(dits):
    branch = vace_branch(6, references=2)
    dit = Recording(dits["vace"])
    out = through_the_engine(dit, branch, LongVideoSettings(window=4, overlap=2), batch=2)
    assert out.shape == (2, 16, 6, H, W) and torch.isfinite(out).all()
    context = branch.inputs["vace_context"]
    last = dit.calls[2]  # step 0, window 1 = video latent frames 2..5
    expected = torch.cat([context[:, :, :2], context[:, :, 4:8]], dim=2).expand(2, -1, -1, -1, -1)
    assert torch.equal(last["vace_context"], expected) and last["vace_strength"] == 0.8


def test_a_branch_refuses_refinement_and_a_foreign_shape(dits):
    positive, negative = _text()
    branch = vace_branch(3)
    with pytest.raises(ValueError, match="vace branch samples a new video from noise"):
        run_sampling(SamplingRequest(dit=dits["vace"], positive=positive, negative=negative, branch=branch,
                                     settings=SamplerSettings(denoise=0.5), latents=torch.zeros(1, 16, 4, H, W)))
    with pytest.raises(ValueError, match="built for latents \\[16, 4, 4, 6\\].*run has \\[16, 9, 4, 6\\]"):
        run_sampling(SamplingRequest(dit=dits["vace"], positive=positive, negative=negative, branch=branch,
                                     shape=(1, 16, 9, H, W)))
    with pytest.raises(TypeError, match="SamplingRequest.long_video must be a LongVideoSettings"):
        SamplingRequest(dit=dits["vace"], positive=positive, long_video={"window": 5})


DEMO = Path(__file__).resolve().parents[1] / "demo_model"


@pytest.mark.skipif(not (DEMO / "diffusion_models").is_dir(), reason="the demo model is not in demo_model/")
def test_generate_reaches_long_video_and_the_step_cache_from_python(tmp_path):
    import av

    dit = Recording(kinema.load_dit(DEMO / "diffusion_models" / "kinema_demo_dit.safetensors"))
    encoder = kinema.load_text_encoder(DEMO / "text_encoders" / "kinema_demo_umt5.safetensors")
    vae = kinema.load_vae(DEMO / "vae" / "kinema_demo_vae.safetensors")
    settings = kinema.SamplerSettings(steps=12, cfg=4.0, shift=2.0, seed=3)
    latents = kinema.generate(dit, encoder, "a red circle moving to the right on a blue background",
                              width=64, height=64, frames=33, settings=settings,
                              long_video=kinema.LongVideoSettings(window=5, overlap=2),
                              step_cache=kinema.StepCacheSettings(threshold=0.2))
    assert latents.shape == (1, vae.config.z_dim, 9, 8, 8)
    windows = 3  # 9 latent frames in windows of 5 every 3
    assert len(dit.calls) < settings.steps * windows * 2, "the step cache skipped no evaluation"
    path = vae.decode_to_file(latents, tmp_path / "long.mp4", fps=16)
    with av.open(str(path)) as video:
        frames = [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]
    assert len(frames) == 33 and frames[0].shape == (64, 64, 3)


class Unprepared:
    """The DiT without `prepare_context`: the engine then hands it raw text at every call (the uncached path)."""

    def __init__(self, dit):
        self.dit, self.config = dit, dit.config

    def parameters(self):
        return self.dit.parameters()

    def __call__(self, *args, **kwargs):
        return self.dit(*args, **kwargs)


def test_text_keys_and_values_once_per_run_equal_the_uncached_path_bit_for_bit(dits):
    """A prompt schedule across long-video windows, guidance, Animate's CLIP features: prepared once per run
    (per model and prompt) or recomputed at every call, the latents are identical."""
    from kinema.core.sampling.prompt_schedule import PromptSchedule, PromptSegment

    positive, negative = _text()
    schedule = PromptSchedule((PromptSegment(0, "a", positive), PromptSegment(9, "b", [_random(5, TEXT_DIM, seed=8)])))
    branch = animate_branch(5)

    def run(dit):
        request = SamplingRequest(dit=dit, positive=schedule, negative=negative, settings=SETTINGS, branch=branch,
                                  long_video=LongVideoSettings(window=3, overlap=1))
        return run_sampling(request)

    assert torch.equal(run(dits["animate"]), run(Unprepared(dits["animate"])))
