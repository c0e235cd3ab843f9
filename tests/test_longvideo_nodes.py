"""KinemaLongVideoSettings, KinemaPromptSchedule, KinemaUpscaleModelLoader and KinemaLatentUpscale on tiny
checkpoints: each node's execute() against the core call it wraps, and its errors."""
from __future__ import annotations

import pytest
import torch

from kinema.core.checkpoints.io import CheckpointError
from kinema.core.longvideo import LongVideoSettings, parse_schedule
from kinema.core.upscale import LatentUpsampler, UpsamplerConfig, interpolate_latents, save_upsampler, vae_upscale
from kinema.nodes import host
from kinema.nodes.loaders import KinemaTextEncoderLoader, KinemaVAELoader
from kinema.nodes.longvideo import KinemaLongVideoSettings, KinemaPromptSchedule
from kinema.nodes.upscale import KinemaLatentUpscale, KinemaUpscaleModelLoader
from raw_latents import to_normalised, to_raw
from tiny_model_folders import TEXT_ENCODER, model_root  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def models(model_root, tmp_path_factory):
    upsampler = LatentUpsampler(UpsamplerConfig(channels=16, mid_channels=8, blocks=1))
    with torch.no_grad():
        upsampler.conv_out.weight.normal_(0, 0.1)
    extra = tmp_path_factory.mktemp("upscale_models")  # a second models root, so the shared one stays clean
    save_upsampler(upsampler, extra / "latent_upscale_models" / "tiny_x2.safetensors")
    (extra / "latent_upscale_models" / "not_ours.safetensors").write_bytes(b"junk")
    host.configure(models=[model_root, extra], output=tmp_path_factory.mktemp("out"))
    yield dict(vae=KinemaVAELoader().load("wan_2.1_vae.safetensors", "default")[0],
               encoder=KinemaTextEncoderLoader().load(TEXT_ENCODER, "default")[0], upsampler=upsampler)
    host.configure()


def test_long_video_settings_are_in_latent_frames():
    (long,) = KinemaLongVideoSettings().settings(81, 28, "linear", True, 0.2)
    assert long.settings == LongVideoSettings(window=21, overlap=7, blend="linear", freenoise=True, drift_strength=0.2)
    assert long.prompts is None


def test_long_video_settings_errors():
    with pytest.raises(ValueError, match="window_frames must be 4k\\+1 and overlap_frames a multiple of 4; got 80"):
        KinemaLongVideoSettings().settings(80, 28, "pyramid", True, 0.0)
    with pytest.raises(ValueError, match="overlap must be an integer in \\[0, window=5\\)"):
        KinemaLongVideoSettings().settings(17, 20, "pyramid", True, 0.0)


def test_prompt_schedule_encodes_each_line(models):
    (schedule,) = KinemaPromptSchedule().encode(models["encoder"], "0: a red ball\n2: a blue ball", 16)
    assert [(s.start_frame, s.prompt) for s in schedule.segments] == [(0, "a red ball"), (32, "a blue ball")]
    expected = models["encoder"].slot.get().encode(["a red ball", "a blue ball"])
    for segment, want in zip(schedule.segments, expected):
        torch.testing.assert_close(segment.positive, want.float())
    (long,) = KinemaLongVideoSettings().settings(17, 8, "pyramid", True, 0.0, prompt_schedule=schedule)
    assert long.prompts is schedule


def test_prompt_schedule_errors_name_the_line(models):
    with pytest.raises(ValueError, match="line 1 'hello' is not '<start seconds>: <prompt>'"):
        KinemaPromptSchedule().encode(models["encoder"], "hello", 16)


def _latents(shape=(1, 16, 2, 2, 4)):
    return {"samples": torch.randn(shape, generator=torch.Generator().manual_seed(0))}


def test_latent_method(models):
    latent = _latents()
    (out,) = KinemaLatentUpscale().upscale(latent, "latent", "2.0")
    torch.testing.assert_close(out["samples"], interpolate_latents(latent["samples"], 2.0))
    assert out["samples"].shape == (1, 16, 2, 4, 8)


def test_vae_method(models):
    latent = _latents()
    (out,) = KinemaLatentUpscale().upscale(latent, "vae", "1.5", vae=models["vae"])
    config = models["vae"].model.config
    stats = (config.latents_mean, config.latents_std)
    expected = to_raw(vae_upscale(models["vae"].model, to_normalised(latent["samples"], stats), 1.5), stats)
    torch.testing.assert_close(out["samples"], expected)
    assert out["samples"].shape == (1, 16, 2, 4, 6)


def test_model_method_with_the_loader(models):
    assert "tiny_x2.safetensors" in KinemaUpscaleModelLoader.INPUT_TYPES()["required"]["model_name"][0]
    (model,) = KinemaUpscaleModelLoader().load("tiny_x2.safetensors")
    latent = _latents()
    (out,) = KinemaLatentUpscale().upscale(latent, "model", "2.0", upscale_model=model)
    # a learned upsampler works in the DiT's normalised space
    expected = to_raw(models["upsampler"].upscale_video(to_normalised(latent["samples"])))
    torch.testing.assert_close(out["samples"], expected)
    with pytest.raises(ValueError, match="upscales x2.0, not x1.5; set scale to 2.0"):
        KinemaLatentUpscale().upscale(latent, "model", "1.5", upscale_model=model)


def test_upscale_node_errors(models):
    with pytest.raises(ValueError, match="the vae method needs the VAE; connect KinemaVAELoader"):
        KinemaLatentUpscale().upscale(_latents(), "vae", "2.0")
    with pytest.raises(ValueError, match="the model method needs an upsampler; connect KinemaUpscaleModelLoader"):
        KinemaLatentUpscale().upscale(_latents(), "model", "2.0")
    with pytest.raises(CheckpointError, match="not_ours.safetensors is not a readable .safetensors"):
        KinemaUpscaleModelLoader().load("not_ours.safetensors")
