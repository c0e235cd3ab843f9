"""Wan-Animate conditioning of one clip (Wan spec 10.2, official wan/animate.py) against closed forms
with a transparent stand-in VAE, and long videos chained in overlapping clips through the tiny
random Animate DiT (the plumbing: padding, carried frames, dropped overlaps, seeds)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from kinema.core.dit import load_dit
from kinema.core.sampling import SamplerSettings
from kinema.core.sampling.animate_conditioning import animate_conditioning
from kinema.core.sampling.segments import animate_long, pad_pingpong, plan_segments

from tiny_dit import FACE_SIZE, TEXT_DIM, make_tiny_diffusers_dit, save_tiny_dit


class PoolVAE:
    """Transparent Wan-shaped VAE: latent frame k = pixel frame 4k pooled 8x8 (16 channels); decode repeats."""

    config = SimpleNamespace(spatial_stride=8, temporal_stride=4, z_dim=16)
    device = torch.device("cpu")

    def encode(self, video):  # [B, 3, 4k+1, H, W] -> [B, 16, k+1, H/8, W/8]
        pooled = F.avg_pool3d(video[:, :, ::4].float(), (1, 8, 8))
        return pooled.repeat(1, 6, 1, 1, 1)[:, :16]

    def decode(self, latents):  # [B, 16, k+1, h, w] -> [B, 3, 4k+1, 8h, 8w]
        frames = torch.cat([latents[:, :3, :1], latents[:, :3, 1:].repeat_interleave(4, dim=2)], dim=2)
        return F.interpolate(frames, scale_factor=(1, 8, 8), mode="nearest").clamp(-1, 1)

    def iter_decode(self, latents, progress=None):  # latent frame 0 -> 1 frame, each later one -> 4, as WanVAE
        for k in range(latents.shape[2]):
            frame = self.decode(latents[:, :, k:k + 1])  # [B, 3, 1, H, W]
            yield frame if k == 0 else frame.repeat(1, 1, 4, 1, 1)


def test_plan_matches_the_official_clip_arithmetic():
    # official get_valid_len: 200 frames, clips of 77 overlapping by 1 -> padded to 229 = 3 clips
    segments, padded = plan_segments(200, 77, 1)
    assert padded == 229 and [(s.start, s.end, s.guided) for s in segments] == [(0, 77, 0), (76, 153, 1), (152, 229, 1)]
    assert plan_segments(77, 77, 5)[1] == 77 and plan_segments(78, 77, 5)[1] == 149 and plan_segments(10, 77, 1)[1] == 77
    with pytest.raises(ValueError, match="4k\\+1"):
        plan_segments(100, 76, 1)
    with pytest.raises(ValueError, match="overlap"):
        plan_segments(100, 77, 77)


def test_pingpong_padding():
    video = torch.arange(3.0).reshape(1, 1, 3, 1, 1)
    assert pad_pingpong(video, 8).flatten().tolist() == [0, 1, 2, 1, 0, 1, 2, 1]
    assert pad_pingpong(video[:, :, :1], 3).flatten().tolist() == [0, 0, 0]


def _driving(frames, height=16, width=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g) * 2 - 1  # noqa: E731
    return rand(1, 3, height, width), rand(1, 3, frames, height, width), rand(1, 3, frames, 24, 20)


def test_clip_conditioning_layout():
    vae = PoolVAE()
    reference, pose, face = _driving(9)
    carry = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    cond = animate_conditioning(vae, reference, pose, face, face_size=FACE_SIZE, carry=carry)
    assert cond.y.shape == (1, 20, 1 + 3, 2, 2) and cond.pose_latents.shape == (1, 16, 3, 2, 2)
    assert cond.face_pixels.shape == (1, 3, 9, FACE_SIZE, FACE_SIZE)  # stretched to the encoder's size
    assert (cond.y[:, :4, 0] == 1).all()  # the reference slot is known
    torch.testing.assert_close(cond.y[:, 4:, :1], vae.encode(reference[:, :, None]))
    # 5 guided pixel frames = latent frames 0 (1 frame) and 1 (4 frames) of the clip: known; frame 2 not
    assert (cond.y[:, :4, 1:3] == 1).all() and not cond.y[:, :4, 3].any()
    guide = torch.cat([carry, torch.zeros(1, 3, 4, 16, 16)], dim=2)
    torch.testing.assert_close(cond.y[:, 4:, 1:], vae.encode(guide))
    torch.testing.assert_close(cond.pose_latents, vae.encode(pose))


def test_replacement_mode_keeps_the_scene():
    vae = PoolVAE()
    reference, pose, face = _driving(5)
    background = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    character = torch.zeros(1, 5, 16, 16)
    character[:, :, :, 8:] = 1  # the character fills the right half
    cond = animate_conditioning(vae, reference, pose, face, face_size=FACE_SIZE, background=background,
                                character_mask=character)
    mask = cond.y[0, :4, 1:]  # [4, 2, 2, 2]
    assert (mask[..., 0] == 1).all() and not mask[..., 1].any()
    torch.testing.assert_close(cond.y[:, 4:, 1:], vae.encode(background))
    with pytest.raises(ValueError, match="both background and character_mask"):
        animate_conditioning(vae, reference, pose, face, background=background)


def test_long_video_chains_clips_through_the_animate_dit(tmp_path):
    """10 driving frames, clips of 5 overlapping by 1: 3 clips (padded to 13), 5 + 4 + 1 new frames; clip
    k+1 is conditioned on clip k's last decoded frame; seeds seed + k."""
    model = make_tiny_diffusers_dit("animate")
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "animate", model=model))
    calls = []

    def recording(x, t, context, **inputs):
        calls.append(inputs)
        return dit(x, t, context, **inputs)

    recording.config = dit.config
    vae = PoolVAE()
    reference, pose, face = _driving(10)
    face = F.interpolate(face[0].transpose(0, 1), size=(FACE_SIZE, FACE_SIZE)).transpose(0, 1)[None]
    clips = []
    settings = SamplerSettings(steps=2, cfg=1.0, solver="euler", seed=7)
    g = torch.Generator().manual_seed(5)
    positive = [torch.randn(6, TEXT_DIM, generator=g)]
    clip_fea = torch.randn(1, 5, model.config.image_dim, generator=g)
    result = animate_long(recording, vae, positive, settings=settings, reference=reference, pose_video=pose,
                          face_video=face, clip_len=5, overlap=1, clip_fea=clip_fea, sink=clips.append)
    assert result is None and [c.shape[2] for c in clips] == [5, 4, 1]
    assert len(calls) == 3 * 2  # 3 clips x 2 steps, cfg 1: one pass each
    second = calls[2]["y"]  # clip 2: its first frame is clip 1's last decoded frame
    torch.testing.assert_close(second[:, 4:, 1:2], vae.encode(clips[0][:, :, -1:]))
    assert (second[:, :4, 1] == 1).all() and not second[:, :4, 2].any()
    torch.testing.assert_close(calls[2]["pose_latents"], vae.encode(pad_pingpong(pose, 13)[:, :, 4:9]))
    collected = animate_long(dit, vae, positive, settings=settings, reference=reference, pose_video=pose,
                             face_video=face, clip_len=5, overlap=1, clip_fea=clip_fea)
    torch.testing.assert_close(collected, torch.cat(clips, dim=2))


def test_one_progress_bar_over_every_clip_and_cancel_between_steps():
    """10 frames in clips of 5 (3 clips) x 2 steps: the bar runs 1..6 of 6; a cancel in clip 2 stops the chain
    there (no later clip is sampled)."""
    from kinema.core.progress import Cancelled, Progress
    from kinema.core.sampling import SamplingRequest
    from kinema.core.sampling.segments import AnimateDrive, FrameSource, sample_chained

    calls = []

    def velocity(x, t, context, **inputs):  # a stand-in DiT: the chain's bookkeeping is what is tested
        calls.append(inputs["y"].shape)
        return torch.zeros_like(x)

    reference, pose, face = _driving(10)
    drive = AnimateDrive(PoolVAE(), reference, FrameSource.of(pose), FrameSource.of(face), face_size=24, clip_len=5)
    request = SamplingRequest(dit=velocity, positive=[torch.zeros(2, 4)],
                              settings=SamplerSettings(steps=2, cfg=1.0, solver="euler"))
    seen = []
    latents, chain = sample_chained(request, drive, 1, Progress(on_step=lambda d, t, _: seen.append((d, t))))
    assert seen == [(d, 6) for d in range(1, 7)] and len(calls) == 6
    assert latents.shape == (1, 16, 3 * 2, 2, 2) and (chain.clip_latent_frames, chain.overlap, chain.frames) == (2, 1, 10)
    assert [c.shape[2] for c in chain.iter_decode(PoolVAE(), latents)] == [1, 4, 4, 1]  # 5 + 4 + 1 frames

    def cancel_in_clip_two():
        if len(calls) >= 3:
            raise Cancelled("stop")

    calls.clear()
    with pytest.raises(Cancelled):
        sample_chained(request, drive, 1, Progress(check_cancel=cancel_in_clip_two))
    assert len(calls) == 3
