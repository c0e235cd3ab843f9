"""Each node's execute() on tiny generated checkpoints (standalone host: plain folders)."""
from __future__ import annotations

import pytest
import torch

from kinema.core.sampling import SamplerSettings, sample
from kinema.core.text import load_text_encoder
from kinema.core.video import read_video
from kinema.nodes import host
from kinema.nodes.decode import KinemaDecodeToVideo, KinemaVAEDecode
from kinema.nodes.encode import KinemaVAEEncode
from kinema.nodes.latent import KinemaEmptyLatent
from kinema.nodes.loaders import KinemaDiTLoader, KinemaTextEncoderLoader, KinemaVAELoader
from kinema.nodes.sampler import KinemaSampler
from kinema.nodes.save_video import KinemaSaveVideo
from kinema.nodes.text_encode import KinemaTextEncode
from raw_latents import to_normalised, to_raw
from tiny_model_folders import TEXT_ENCODER, model_root  # noqa: F401  (fixture)

T2V, TI2V, I2V = "wan2.1_t2v_1.3B_fp16.safetensors", "wan2.2_ti2v_5B_fp16.safetensors", "tiny_wan2.2_i2v.safetensors"
HIGH, LOW = "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"
CUSTOM = "custom (width x height)"
SAMPLER = dict(seed=3, steps=2, cfg=4.0, shift=5.0, solver="euler", denoise=1.0, boundary=0.0, cfg_low_noise=0.0)


@pytest.fixture(scope="module")
def models(model_root, tmp_path_factory):
    host.configure(models=[model_root], output=tmp_path_factory.mktemp("out"))
    vae21 = KinemaVAELoader().load("wan_2.1_vae.safetensors", "default")[0]
    vae22 = KinemaVAELoader().load("wan2.2_vae.safetensors", "default")[0]
    encoder = KinemaTextEncoderLoader().load(TEXT_ENCODER, "default")[0]
    conditioning = KinemaTextEncode().encode(encoder, "a fox in the snow", "blurry", unload_encoder=False)[0]
    dits = {name: KinemaDiTLoader().load(name, "default", "sdpa")[0] for name in (T2V, TI2V, I2V, HIGH, LOW)}
    yield dict(vae21=vae21, vae22=vae22, encoder=encoder, conditioning=conditioning, dits=dits, root=model_root)
    host.configure()


def _empty(vae, width=64, height=32, frames=5):
    return KinemaEmptyLatent().make(vae, CUSTOM, width, height, frames, 0.0, 16)[0]


def test_loaders_wrap_the_core_models(models):
    assert models["dits"][T2V].model.config.in_dim == 16 and models["dits"][TI2V].model.config.out_dim == 48
    assert models["dits"][T2V].name == T2V
    assert models["vae21"].model.config.z_dim == 16 and models["vae22"].model.config.spatial_stride == 16
    assert models["encoder"].slot.loaded


def test_loader_error_names_the_folder(models):
    with pytest.raises(FileNotFoundError, match="'diffusion_models' folders"):
        KinemaDiTLoader().load("no_such_model.safetensors", "default", "sdpa")


def test_text_encode_matches_the_encoder_and_caches_by_prompt(models):
    encoder = models["encoder"]
    direct = load_text_encoder(encoder.path).encode(["a red kite", "noise"])
    node = KinemaTextEncode()
    conditioning = node.encode(encoder, "a red kite", "noise", unload_encoder=True)[0]
    torch.testing.assert_close(conditioning.positive, direct[0])
    torch.testing.assert_close(conditioning.negative, direct[1])
    assert not encoder.slot.loaded  # unloaded after use
    again = node.encode(encoder, "a red kite", "noise", unload_encoder=True)[0]
    assert not encoder.slot.loaded, "cached prompts must not load the encoder again"
    assert again.positive is conditioning.positive
    node.encode(encoder, "a new prompt", "noise", unload_encoder=False)
    assert encoder.slot.loaded  # a new prompt reloads it from its file


@pytest.mark.parametrize("aspect, size", [("16:9", (848, 480)), ("9:16", (480, 848)), ("1:1", (624, 624)),
                                          ("4:3", (736, 544)), ("21:9", (960, 416)),
                                          ("1536x2688 (9:16 portrait)", (1536, 2688))])
def test_empty_latent_presets(models, aspect, size):
    latent, width, height, frames, info = KinemaEmptyLatent().make(models["vae21"], aspect, 832, 480, 1, 0.0, 16)
    assert (width, height) == size and width % 16 == 0 and height % 16 == 0
    assert latent["samples"].shape == (1, 16, 1, height // 8, width // 8)


def test_empty_latent_rounds_and_says_so(models):
    latent, width, height, frames, info = KinemaEmptyLatent().make(models["vae22"], CUSTOM, 1000, 500, 80, 0.0, 24)
    assert (width, height, frames) == (992, 512, 81)  # multiples of 32 for the Wan2.2 VAE, 4k+1 frames
    assert latent["samples"].shape == (1, 48, 21, 32, 62)
    assert "size 1000x500 -> 992x512" in info and "frames 80 -> 81" in info
    _, _, _, frames, info = KinemaEmptyLatent().make(models["vae21"], CUSTOM, 64, 32, 81, 5.0, 16)
    assert frames == 81 and "5.06 s at 16 fps" in info  # seconds x fps = 80 frames -> 81


def test_sampler_is_core_sample_with_the_node_settings(models):
    dit, cond = models["dits"][T2V], models["conditioning"]
    latent = _empty(models["vae21"])
    out = KinemaSampler().sample(dit, cond, latent, **SAMPLER)[0]["samples"]
    settings = SamplerSettings(steps=2, cfg=4.0, shift=5.0, solver="euler", seed=3)
    expected = sample(dit.model, [cond.positive], [cond.negative], settings=settings, shape=(1, 16, 2, 4, 8))
    torch.testing.assert_close(out, to_raw(expected))


def test_sampler_two_experts(models):
    high, low, cond = models["dits"][HIGH], models["dits"][LOW], models["conditioning"]
    latent = _empty(models["vae21"])
    # shift 5, 4 steps: model times ~999, 937, 833, 625; boundary 0.9 gives two steps to each expert
    options = {**SAMPLER, "steps": 4, "boundary": 0.9, "cfg_low_noise": 2.0}
    out = KinemaSampler().sample(high, cond, latent, **options, dit_low_noise=low)[0]["samples"]
    settings = SamplerSettings(steps=4, cfg=4.0, shift=5.0, solver="euler", seed=3, boundary=0.9, cfg_low_noise=2.0)
    expected = sample(high.model, [cond.positive], [cond.negative], settings=settings, shape=(1, 16, 2, 4, 8),
                      dit_low_noise=low.model)
    torch.testing.assert_close(out, to_raw(expected))
    alone = KinemaSampler().sample(high, cond, latent, **options)[0]["samples"]
    assert not torch.allclose(out, alone), "the low-noise expert did not run"


def test_sampler_denoise_refines_the_input_latent(models):
    dit, cond = models["dits"][T2V], models["conditioning"]
    start = {"samples": torch.randn(1, 16, 2, 4, 8)}
    refined = KinemaSampler().sample(dit, cond, start, **{**SAMPLER, "denoise": 0.5})[0]["samples"]
    other = KinemaSampler().sample(dit, cond, {"samples": -start["samples"]}, **{**SAMPLER, "denoise": 0.5})[0]
    assert not torch.allclose(refined, other["samples"])


def test_sampler_ti2v_start_image_is_the_first_latent_frame(models):
    vae, dit = models["vae22"], models["dits"][TI2V]
    latent = _empty(vae, 64, 32, 5)
    image = torch.rand(1, 32, 64, 3)  # already the latent's pixel size: no resize
    out = KinemaSampler().sample(dit, models["conditioning"], latent, **SAMPLER, start_image=image, vae=vae)[0]
    encoded = vae.model.encode(image.permute(0, 3, 1, 2)[:, :, None] * 2 - 1)  # [1, 48, 1, 2, 4], normalised
    assert out["samples"].shape == (1, 48, 2, 2, 4)
    torch.testing.assert_close(out["samples"][:, :, :1], to_raw(encoded), atol=1e-5, rtol=0)  # LATENT is raw
    assert not torch.allclose(out["samples"][:, :, 1:], torch.zeros(1, 48, 1, 2, 4))


def test_sampler_i2v_start_image(models):
    vae, dit = models["vae21"], models["dits"][I2V]
    out = KinemaSampler().sample(dit, models["conditioning"], _empty(vae), **SAMPLER,
                                 start_image=torch.rand(1, 32, 64, 3), vae=vae)[0]["samples"]
    assert out.shape == (1, 16, 2, 4, 8) and torch.isfinite(out).all()


def test_sampler_start_image_errors(models):
    image = torch.rand(1, 32, 64, 3)
    with pytest.raises(ValueError, match="connect KinemaVAELoader to 'vae'"):
        KinemaSampler().sample(models["dits"][TI2V], models["conditioning"], _empty(models["vae22"]), **SAMPLER,
                               start_image=image)
    with pytest.raises(ValueError, match="text-to-video model and takes no start_image"):
        KinemaSampler().sample(models["dits"][T2V], models["conditioning"], _empty(models["vae21"]), **SAMPLER,
                               start_image=image, vae=models["vae21"])


def _latents(vae, frames=2):
    torch.manual_seed(0)
    return {"samples": torch.randn(1, vae.model.config.z_dim, frames, 4, 8)}


def test_vae_decode_gives_comfyui_images(models):
    vae = models["vae21"]
    latents = _latents(vae)
    images = KinemaVAEDecode().decode(vae, latents)[0]
    stats = (vae.model.config.latents_mean, vae.model.config.latents_std)
    video = vae.model.decode(to_normalised(latents["samples"], stats))  # [1, 3, 5, 32, 64] in [-1, 1]
    assert images.shape == (5, 32, 64, 3) and images.dtype == torch.float32
    torch.testing.assert_close(images, (video[0].permute(1, 2, 3, 0) + 1) / 2)


def test_decode_to_video_streams_an_mp4_into_the_output_folder(models):
    vae = models["vae21"]
    latents = _latents(vae)
    result = KinemaDecodeToVideo().decode(vae, latents, 16, "kinema/test_decode")
    path = result["result"][0]
    item = result["ui"]["images"][0]
    assert result["ui"]["animated"] == (True,) and item["subfolder"] == "kinema" and path.endswith(item["filename"])
    video = read_video(path)
    assert video.frame_count == 5 and video.frames.shape[1:] == (32, 64, 3) and video.fps == 16
    images = KinemaVAEDecode().decode(vae, latents)[0]
    assert (video.frames.float() / 255 - images).abs().mean() < 0.05  # H.264 at crf 18
    second = KinemaDecodeToVideo().decode(vae, latents, 16, "kinema/test_decode")["result"][0]
    assert second != path and second.endswith("_00002_.mp4")


def test_decode_to_video_centre_crops(models):
    vae = models["vae21"]
    latents = _latents(vae)  # decodes to 5 frames of 32x64
    images = KinemaVAEDecode().decode(vae, latents)[0]  # [5, 32, 64, 3]
    path = KinemaDecodeToVideo().decode(vae, latents, 16, "kinema/crop", crop_width=48, crop_height=20)["result"][0]
    video = read_video(path)
    assert video.frame_count == 5 and video.frames.shape[1:] == (20, 48, 3)
    assert (video.frames.float() / 255 - images[:, 6:26, 8:56]).abs().mean() < 0.05  # rows 6..25, columns 8..55
    height_only = KinemaDecodeToVideo().decode(vae, latents, 16, "kinema/crop", crop_height=30)["result"][0]
    assert read_video(height_only).frames.shape[1:] == (30, 64, 3)  # crop_width 0 keeps the width


def test_decode_to_video_refuses_a_crop_larger_than_the_video(models):
    with pytest.raises(ValueError, match="cannot crop the 64x32 video to 64x40; set crop_width <= 64 and "
                                         "crop_height <= 32"):
        KinemaDecodeToVideo().decode(models["vae21"], _latents(models["vae21"]), 16, "kinema/crop", crop_height=40)


def test_decode_to_video_refuses_a_batch(models):
    latents = {"samples": torch.zeros(2, 16, 2, 4, 8)}
    with pytest.raises(ValueError, match="one video per file"):
        KinemaDecodeToVideo().decode(models["vae21"], latents, 16, "kinema/batch")


def test_save_video_writes_the_frames(models):
    images = torch.rand(7, 32, 48, 3)
    result = KinemaSaveVideo().save(images, 24, "kinema/saved")
    video = read_video(result["result"][0])
    assert video.frame_count == 7 and video.frames.shape[1:] == (32, 48, 3) and video.fps == 24
    with pytest.raises(ValueError, match="RGB frames"):
        KinemaSaveVideo().save(torch.rand(7, 32, 48, 4), 24, "kinema/saved")


def test_vae_encode_gives_raw_latents_that_decode_back(models):
    vae = models["vae21"]
    images = torch.rand(5, 32, 64, 3, generator=torch.Generator().manual_seed(2))
    latent = KinemaVAEEncode().encode(vae, images)[0]["samples"]  # [1, 16, 2, 4, 8]
    encoded = vae.model.encode(images.permute(3, 0, 1, 2)[None] * 2 - 1)  # the core's normalised latents
    stats = (vae.model.config.latents_mean, vae.model.config.latents_std)
    torch.testing.assert_close(latent, to_raw(encoded, stats))
    with pytest.raises(ValueError, match="KinemaVAEEncode: .*encodes 4k\\+1 frames; got 4"):
        KinemaVAEEncode().encode(vae, images[:4])
