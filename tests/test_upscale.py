"""core.upscale: latent interpolation vs an independent 3D resize, the streamed VAE round trip vs the
whole-clip composition, the learned upsampler (identity-to-bicubic at init, file round trip, errors),
resumable training, the demo's training script, and the streaming output chain (transform + crop)."""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch
import torch.nn.functional as F

from kinema.core.checkpoints.io import CheckpointError
from kinema.core.longvideo import write_video
from kinema.core.upscale import (LatentUpsampler, StreamingEncoder, UpsamplerConfig, interpolate_latents,
                                 load_upsampler, resize_video, save_upsampler, upscaled_size, vae_upscale)
from kinema.core.upscale.training import train_upsampler
from kinema.core.vae import load_vae
from kinema.core.video import read_video
from tiny_vae import save_tiny_vae


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return load_vae(save_tiny_vae(tmp_path_factory.mktemp("vae"), "2.1", "comfy"))


def _latents(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


# ---- sizes and direct interpolation --------------------------------------------------------------

@pytest.mark.parametrize("hw,scale,want", [((68, 120), 2, (136, 240)),  # 960x544 -> 1920x1088
                                           ((90, 160), 1.5, (136, 240)),  # 1280x720 -> 1920x1088
                                           ((60, 104), 1.5, (90, 156))])
def test_upscaled_sizes_stay_even(hw, scale, want):
    assert upscaled_size(*hw, scale) == want


def test_latent_interpolation_is_a_per_frame_resize():
    z = _latents((2, 16, 5, 4, 6))
    out = interpolate_latents(z, 2, mode="bilinear", chunk_frames=2)
    reference = F.interpolate(z, size=(5, 8, 12), mode="trilinear", align_corners=False)  # time axis untouched
    assert out.shape == (2, 16, 5, 8, 12) and torch.allclose(out, reference, atol=1e-5)


@pytest.mark.parametrize("call,message", [
    (lambda: upscaled_size(4, 4, 1.0), "upscale factor must be a number > 1"),
    (lambda: interpolate_latents(torch.zeros(1, 16, 4, 4), 2), "expected a latent video \\[B, C, T, H, W\\]"),
    (lambda: interpolate_latents(torch.zeros(1, 16, 1, 4, 4), 2, mode="lanczos"), "unknown latent resize mode"),
])
def test_interpolation_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- VAE round trip ------------------------------------------------------------------------------

def test_streaming_encoder_equals_whole_clip_encode(vae):
    video = torch.rand(1, 3, 9, 24, 40, generator=torch.Generator().manual_seed(1)) * 2 - 1
    encoder = StreamingEncoder(vae, 24, 40, tiling=None)
    streamed = torch.cat([encoder(video[:, :, :1]), encoder(video[:, :, 1:5]), encoder(video[:, :, 5:9])], dim=2)
    assert torch.allclose(streamed, vae.encode(video), atol=1e-5)


def test_streaming_encoder_wants_one_frame_then_fours(vae):
    encoder = StreamingEncoder(vae, 24, 40, tiling=None)
    with pytest.raises(ValueError, match="takes the first frame alone, then 4 frames at a time; got a chunk of 5"):
        encoder(torch.zeros(1, 3, 5, 24, 40))


def test_vae_upscale_is_decode_resize_encode_one_chunk_at_a_time(vae):
    z = _latents((1, 16, 3, 3, 5), seed=2)
    seen = []
    out = vae_upscale(vae, z, 2, tiling=None, pixel_step=lambda chunk: seen.append(chunk.shape[2]) or chunk)
    assert out.shape == (1, 16, 3, 6, 10)
    assert seen == [1, 4, 4]  # never more than one latent frame's pixels at once
    whole = vae.decode(z, tiling=None)  # [1, 3, 9, 24, 40]
    frames = whole[0].permute(1, 0, 2, 3)  # [9, 3, 24, 40]
    big = F.interpolate(frames, size=(48, 80), mode="bicubic", align_corners=False).clamp(-1, 1)
    reference = vae.encode(big.permute(1, 0, 2, 3)[None])
    assert torch.allclose(out, reference, atol=1e-4)


def test_resize_video_shrinks_with_antialiasing():
    stripes = torch.ones(1, 3, 1, 8, 8)
    stripes[..., ::2] = -1  # one-pixel stripes average to 0 when shrunk properly
    assert resize_video(stripes, (4, 4)).abs().max() < 0.2


# ---- learned upsampler ---------------------------------------------------------------------------

@pytest.mark.parametrize("scale,size", [(2.0, (8, 12)), (1.5, (6, 10))])
def test_untrained_upsampler_is_exactly_bicubic(scale, size):
    model = LatentUpsampler(UpsamplerConfig(channels=16, mid_channels=8, blocks=1, scale=scale))
    z = _latents((1, 16, 3, 4, 6))
    out = model.upscale_video(z, chunk_frames=2)
    frames = z[0].permute(1, 0, 2, 3)
    reference = F.interpolate(frames, size=size, mode="bicubic", align_corners=False).permute(1, 0, 2, 3)[None]
    assert out.shape == (1, 16, 3, *size) and torch.allclose(out, reference, atol=1e-6)


def test_upsampler_file_round_trip(tmp_path):
    model = LatentUpsampler(UpsamplerConfig(channels=16, mid_channels=8, blocks=1))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    path = save_upsampler(model, tmp_path / "up.safetensors")
    loaded = load_upsampler(path)
    z = _latents((1, 16, 2, 4, 4))
    assert loaded.config == model.config and torch.equal(loaded.upscale_video(z), model.upscale_video(z))
    with pytest.raises(FileExistsError, match="never overwrites"):
        save_upsampler(model, path)


def test_upsampler_refuses_other_latents():
    model = LatentUpsampler(UpsamplerConfig(channels=16, mid_channels=8, blocks=1))
    with pytest.raises(ValueError, match="made for 16-channel latents, got 48 \\(Wan2.2 VAE latents\\)"):
        model.upscale_video(torch.zeros(1, 48, 1, 4, 4))


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _write(path, tensors, metadata=None):
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("make,error,message", [
    (lambda d: d / "missing.safetensors", FileNotFoundError, "does not exist; put it in models/latent_upscale_models"),
    (lambda d: _bytes(d / "x.pt", b"0"), CheckpointError, "read from .safetensors files"),
    (lambda d: _bytes(d / "bad.safetensors", b"garbage"), CheckpointError,
     "not a readable .safetensors"),
    (lambda d: _write(d / "ltx.safetensors", {"initial_conv.weight": torch.zeros(1)}), CheckpointError,
     "looks like an LTX-Video latent upsampler"),
    (lambda d: _write(d / "plain.safetensors", {"w": torch.zeros(1)}), CheckpointError,
     "is not a Kinema latent upsampler.*train one with"),
    (lambda d: _write(d / "cut.safetensors", {"conv_in.weight": torch.zeros(1)},
                      {"format": "kinema_latent_upsampler", "config": '{"channels": 16, "mid_channels": 8}'}),
     CheckpointError, "tensors do not match its config"),
])
def test_loader_errors(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        load_upsampler(make(tmp_path))


# ---- training ------------------------------------------------------------------------------------

def _clips(step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    coarse = torch.rand(2, 3, 2, 3, 4, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(5, 32, 48), mode="trilinear", align_corners=False)  # smooth clips


def test_training_resumes_to_the_same_weights(vae, tmp_path):
    config = UpsamplerConfig(channels=16, mid_channels=8, blocks=1)
    quiet = lambda line: None  # noqa: E731
    straight = train_upsampler(vae, _clips, tmp_path / "a.safetensors", config=config, steps=4, checkpoint_every=2,
                               log=quiet)
    train_upsampler(vae, _clips, tmp_path / "b.safetensors", config=config, steps=2, checkpoint_every=2, log=quiet)
    lines = []
    resumed = train_upsampler(vae, _clips, tmp_path / "b.safetensors", config=config, steps=4, checkpoint_every=2,
                              log=lines.append)
    assert lines[0].startswith("resumed from") and "at step 2" in lines[0]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert load_upsampler(tmp_path / "b.safetensors").config == config


def test_training_lowers_the_loss_below_bicubic(vae, tmp_path):
    from kinema.core.upscale.training import _frames, training_pair

    config = UpsamplerConfig(channels=16, mid_channels=16, blocks=1)
    model = train_upsampler(vae, _clips, tmp_path / "c.safetensors", config=config, steps=30, lr=3e-3,
                            log=lambda line: None)
    small, target = training_pair(vae, _clips(0), 2.0)
    with torch.no_grad():
        learned = F.mse_loss(model(_frames(small)), _frames(target))
    bicubic = F.mse_loss(F.interpolate(_frames(small), size=target.shape[-2:], mode="bicubic"), _frames(target))
    assert learned < bicubic


def test_natively_drawn_small_clips_replace_the_resize(vae, tmp_path):
    """A renderer can give the small clips itself; given exactly the resized clips, training is the same."""
    from kinema.core.upscale import resize_video

    config = UpsamplerConfig(channels=16, mid_channels=8, blocks=1)
    quiet = lambda line: None  # noqa: E731
    resized = train_upsampler(vae, _clips, tmp_path / "a.safetensors", config=config, steps=3, log=quiet)
    drawn = train_upsampler(vae, _clips, tmp_path / "b.safetensors", config=config, steps=3, log=quiet,
                            small_clips=lambda step: resize_video(_clips(step), (16, 24)))
    for (name, a), b in zip(resized.state_dict().items(), drawn.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_training_pairs_need_matching_sizes(vae):
    from kinema.core.upscale.training import training_pair

    with pytest.raises(ValueError, match="do not make an x2.0 pair"):
        training_pair(vae, torch.zeros(1, 3, 1, 24, 40), 2.0)


def test_demo_clips_are_the_same_clip_drawn_at_two_sizes():
    """The demo script's pairs: the 128 px clip shrunk by area averaging is the 64 px clip of that step."""
    from kinema.demo.train_upsampler import demo_clips

    small, full = demo_clips(2, 64)(3), demo_clips(2, 128)(3)  # [2, 3, 17, 64, 64], [2, 3, 17, 128, 128]
    shrunk = F.interpolate(full, size=small.shape[2:], mode="area")
    assert (shrunk - small).abs().mean() < 0.01
    assert (demo_clips(2, 64)(4) - small).abs().mean() > 0.1  # another step, other clips


def test_demo_script_trains_and_exports(tmp_path):
    from kinema.demo.train_upsampler import main

    threads = torch.get_num_threads()  # the script sets its own thread count
    vae_file = save_tiny_vae(tmp_path / "vae", "2.1", "comfy")
    out, checkpoint = tmp_path / "up.safetensors", tmp_path / "runs" / "up.train.pt"
    main(["--vae", str(vae_file), "--out", str(out), "--checkpoint", str(checkpoint), "--steps", "1", "--batch",
          "1", "--mid-channels", "8", "--blocks", "1", "--threads", str(threads)])
    assert load_upsampler(out).config == UpsamplerConfig(channels=16, mid_channels=8, blocks=1, scale=2.0)
    assert torch.load(checkpoint, weights_only=True)["step"] == 1


# ---- streaming output chain ----------------------------------------------------------------------

def double_frames(chunks):
    """A stand-in frame interpolator (iterator transform): every frame twice; write at twice the rate."""
    for chunk in chunks:
        seen.append(chunk.shape[0])
        yield chunk.repeat_interleave(2, dim=0)


seen: list = []


def test_write_video_streams_through_the_transform_and_crops(vae, tmp_path):
    z = _latents((1, 16, 3, 3, 5), seed=4)
    seen.clear()
    path = write_video(vae, z, tmp_path / "out.mp4", fps=32, frame_transform=double_frames, crop=(16, 40),
                       tiling=None)
    video = read_video(path)
    assert seen == [1, 4, 4]  # one latent frame's pixels at a time
    assert video.frames.shape == (18, 16, 40, 3) and video.fps == Fraction(32)
    decoded = (vae.decode(z, tiling=None)[0].permute(1, 2, 3, 0) + 1) * 127.5  # [9, 24, 40, 3]
    error = lambda top: (video.frames[::2].float() - decoded[:, top:top + 16]).abs().mean()  # noqa: E731
    assert error(4) < 16 and error(4) < min(error(0), error(8))  # the centre rows (noise frames: H.264 is lossy)


def test_crop_larger_than_the_video_is_an_error(vae, tmp_path):
    with pytest.raises(ValueError, match="cannot crop 40x24 frames to 40x32"):
        write_video(vae, _latents((1, 16, 1, 3, 5)), tmp_path / "x.mp4", crop=(32, 40), tiling=None)
