"""Wan-Animate's official behaviour, each against the rule written out here from wan/animate.py:
- cfg > 1: the unguided pass gets the negative prompt and face pixels of all -1 (`face_pixel_values * 0 - 1`),
  every other input unchanged;
- replacement mode: y = [1 - character mask (known where the character is not) + the carried frames, VAE of
  (carried frames, then the background video)], through the node (IMAGE / MASK inputs) and the clip chain.
Tiny random Animate DiT and Wan2.1 VAE."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kinema.core.dit import load_dit
from kinema.core.sampling import BranchConditioning, SamplerSettings, SamplingRequest, make_schedule, run_sampling
from kinema.core.sampling import seeded_noise
from kinema.core.sampling.segments import AnimateDrive, FrameSource, iter_clips
from kinema.core.vae import load_vae
from kinema.nodes.conditioning_pose import KinemaAnimateConditioning
from kinema.nodes.types import DiTModel, VAEModel

from test_animate_long_cli import official_i2v_mask
from tiny_dit import FACE_SIZE, TEXT_DIM, save_tiny_dit
from tiny_vae import save_tiny_vae

H = W = 16  # pixels (latent 2 x 2)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("animate_official")
    return load_dit(save_tiny_dit(root / "dit", "comfy", "animate")), load_vae(save_tiny_vae(root / "vae"))


def _rand(*shape, seed):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _text():
    g = torch.Generator().manual_seed(3)
    return [torch.randn(6, TEXT_DIM, generator=g)], [torch.randn(4, TEXT_DIM, generator=g)]


def test_cfg_above_one_feeds_the_unguided_pass_no_face(models):
    dit, _ = models
    frames = 2  # latent frames of the clip, behind the reference slot
    inputs = {"y": _rand(1, 20, 1 + frames, 2, 2, seed=1) * 2 - 1, "pose_latents": _rand(1, 16, frames, 2, 2, seed=2),
              "face_pixels": _rand(1, 3, 4 * (frames - 1) + 1, FACE_SIZE, FACE_SIZE, seed=4) * 2 - 1,
              "clip_fea": _rand(1, 5, dit.config.image_dim, seed=5)}
    branch = BranchConditioning("animate", inputs, (1, 16, 1 + frames, 2, 2), 1)
    settings = SamplerSettings(steps=3, cfg=3.5, shift=5.0, solver="euler", seed=9)
    positive, negative = _text()
    schedule = make_schedule(settings)

    def official(face_uncond):
        arg_c = dict(inputs)
        arg_null = {**inputs, "face_pixels": face_uncond}
        latents = seeded_noise(branch.latent_shape, settings.seed)
        sigmas = schedule.sigmas.tolist()
        for i, t in enumerate(schedule.timesteps):
            t = t.reshape(1)
            cond = dit(latents, t, positive, **arg_c)
            uncond = dit(latents, t, negative, **arg_null)
            noise_pred = uncond + settings.cfg * (cond - uncond)
            latents = latents + (sigmas[i + 1] - sigmas[i]) * noise_pred  # the euler step
        return latents[:, :, 1:]

    with torch.no_grad():
        ours = run_sampling(SamplingRequest(dit=dit, positive=positive, negative=negative, settings=settings,
                                            branch=branch))
        expected = official(inputs["face_pixels"] * 0 - 1)
        with_the_face = official(inputs["face_pixels"])
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)
    assert (ours - with_the_face).abs().max() > 1e-3, "the face must matter for the test to tell the rules apart"


def official_replace_y(vae, reference, background, character, refer_t, mask_reft_len):
    """y of one replacement-mode clip by the official code (background [1, 3, T, H, W], character mask
    [1, T, H, W] with 1 = character, refer_t [1, 3, r, H, W] the previous clip's last decoded frames)."""
    T = background.shape[2]
    lat_h, lat_w, lat_t = H // 8, W // 8, T // 4 + 1
    y_ref = torch.concat([official_i2v_mask(1, lat_h, lat_w, 1), vae.encode(reference[:, :, None])[0]])
    mask_pixel_values = 1 - character[:, :, None]  # "b t c h w"
    mask_pixel_values = F.interpolate(mask_pixel_values[0], size=(H // 8, W // 8), mode="nearest")[None][:, :, 0]
    if mask_reft_len:
        video = torch.concat([refer_t[0, :, :mask_reft_len], background[0, :, mask_reft_len:]], dim=1)
    else:
        video = background[0]
    y_reft = vae.encode(video[None])[0]
    msk_reft = official_i2v_mask(lat_t, lat_h, lat_w, mask_reft_len, mask_pixel_values=mask_pixel_values)
    return torch.concat([y_ref, torch.concat([msk_reft, y_reft])], dim=1)[None]


def _replace_inputs(frames):
    reference = _rand(1, 3, H, W, seed=10) * 2 - 1
    driving = _rand(1, 3, frames, H, W, seed=11) * 2 - 1
    background = _rand(1, 3, frames, H, W, seed=12) * 2 - 1
    character = (_rand(1, frames, H, W, seed=13) > 0.5).float()  # a ragged mask: every 8x8 block differs
    return reference, driving, background, character


def test_replacement_mode_node_builds_the_official_y(models):
    dit, vae = models
    reference, driving, background, character = _replace_inputs(9)
    image = lambda video: ((video[0].permute(1, 2, 3, 0) + 1) / 2)  # noqa: E731  [F, H, W, 3] in 0..1
    (branch,) = KinemaAnimateConditioning().build(
        DiTModel(dit, "tiny"), VAEModel(vae, "tiny"), (reference.permute(0, 2, 3, 1) + 1) / 2, image(driving),
        image(driving), width=W, height=H, frames=9, background_video=image(background), character_mask=character[0])
    # the node goes through ComfyUI's 0..1 images: the official rule gets the same pixels back
    back = lambda video: image(video) * 2 - 1  # noqa: E731
    expected = official_replace_y(vae, (reference + 1) / 2 * 2 - 1,
                                  back(background).permute(3, 0, 1, 2)[None], character, None, 0)
    torch.testing.assert_close(branch.inputs["y"], expected, rtol=0, atol=1e-6)


def test_replacement_mode_chains_clips_the_official_way(models):
    """Clip 2 of a replacement chain: its first refert_num frames are clip 1's last decoded frames, the rest the
    background, and the mask keeps the scene outside the character plus those frames."""
    dit, vae = models
    reference, driving, background, character = _replace_inputs(12)
    calls = []

    def recording(x, t, context, **inputs):
        calls.append(inputs)
        return dit(x, t, context, **inputs)

    recording.config = dit.config
    drive = AnimateDrive(vae, reference, FrameSource.of(driving), FrameSource.of(driving), FACE_SIZE, clip_len=9,
                         background=FrameSource.of(background), character_mask=FrameSource.of(character),
                         clip_fea=_rand(1, 5, dit.config.image_dim, seed=14))
    request = SamplingRequest(dit=recording, positive=_text()[0], settings=SamplerSettings(steps=1, cfg=1.0,
                                                                                           solver="euler", seed=1))
    refert = 5
    with torch.no_grad():
        clips = list(iter_clips(request, drive, overlap=refert, decode_last=True))
    assert [(s.start, s.end) for s, _, _ in clips] == [(0, 9), (4, 13)]  # 12 frames padded to 13: two clips
    order = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 10]  # the official back-and-forth padding
    first = official_replace_y(vae, reference, background[:, :, :9], character[:, :9], None, 0)
    second = official_replace_y(vae, reference, background[:, :, order[4:13]], character[:, order[4:13]],
                                clips[0][2][:, :, -refert:], refert)
    torch.testing.assert_close(calls[0]["y"], first, rtol=0, atol=1e-6)
    torch.testing.assert_close(calls[1]["y"], second, rtol=0, atol=1e-6)
