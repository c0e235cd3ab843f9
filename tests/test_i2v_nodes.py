"""The I2V nodes on tiny checkpoints: KinemaCLIPVisionLoader + KinemaCLIPVisionEncode into KinemaSampler's
image_features (and end_image) against the core called directly, native ComfyUI CLIP_VISION_OUTPUT taken the
same way, and the errors that say what to connect."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from kinema.core.clip_vision import load_clip_vision
from kinema.core.sampling import SamplerSettings, sample
from kinema.core.sampling.setup import image_conditioning
from kinema.nodes import host
from kinema.nodes.clip_vision import KinemaCLIPVisionEncode, KinemaCLIPVisionLoader
from kinema.nodes.conditioning_pose import KinemaAnimateConditioning
from kinema.nodes.latent import KinemaEmptyLatent
from kinema.nodes.loaders import KinemaDiTLoader, KinemaTextEncoderLoader, KinemaVAELoader
from kinema.nodes.sampler import KinemaSampler
from kinema.nodes.text_encode import KinemaTextEncode
from raw_latents import to_raw
from tiny_model_folders import CLIP_VISION, TEXT_ENCODER, model_root  # noqa: F401  (fixture)

FLF2V, I2V = "wan2.1_flf2v_720p_14B_fp16.safetensors", "wan2.1_i2v_480p_14B_fp16.safetensors"
SAMPLER = dict(seed=3, steps=3, cfg=2.0, shift=5.0, solver="unipc", denoise=1.0, boundary=0.0, cfg_low_noise=0.0)
W, H, FRAMES = 64, 32, 9


@pytest.fixture(scope="module")
def models(model_root, tmp_path_factory):
    host.configure(models=[model_root], output=tmp_path_factory.mktemp("out"))
    encoder = KinemaTextEncoderLoader().load(TEXT_ENCODER, "default")[0]
    vae = KinemaVAELoader().load("wan_2.1_vae.safetensors", "default")[0]
    g = torch.Generator().manual_seed(0)
    yield dict(
        vae=vae, conditioning=KinemaTextEncode().encode(encoder, "a smile", "blur", unload_encoder=True)[0],
        clip=KinemaCLIPVisionLoader().load(CLIP_VISION, "default")[0],
        clip_core=load_clip_vision(model_root / "clip_vision" / CLIP_VISION),
        dits={name: KinemaDiTLoader().load(name, "default", "sdpa")[0] for name in (FLF2V, I2V)},
        latent=KinemaEmptyLatent().make(vae, "custom (width x height)", W, H, FRAMES, 0.0, 16)[0],
        start=torch.rand(1, 40, 56, 3, generator=g), end=torch.rand(1, 24, 30, 3, generator=g))
    host.configure()


def _rgb(image: torch.Tensor) -> torch.Tensor:
    return image.permute(0, 3, 1, 2) * 2 - 1


def test_flf2v_sampler_equals_the_core(models):
    m = models
    features = KinemaCLIPVisionEncode().encode(m["clip"], m["start"], m["end"])[0]
    ours = KinemaSampler().sample(m["dits"][FLF2V], m["conditioning"], m["latent"], **SAMPLER, start_image=m["start"],
                                  end_image=m["end"], vae=m["vae"], image_features=features)[0]["samples"]
    # the core, by hand: both pictures through Wan's CLIP preprocessing, start then end, side by side
    clip_fea = torch.cat([m["clip_core"].encode(_rgb(m["start"])), m["clip_core"].encode(_rgb(m["end"]))], dim=1)
    shape = tuple(m["latent"]["samples"].shape)
    dit = m["dits"][FLF2V].model
    image = image_conditioning(dit, m["vae"].model, _rgb(m["start"]), shape, torch.device("cpu"),
                               end_image=_rgb(m["end"]), clip_fea=clip_fea)
    settings = SamplerSettings(steps=3, cfg=2.0, shift=5.0, solver="unipc", seed=3)
    expected = sample(dit, [m["conditioning"].positive], [m["conditioning"].negative], settings=settings,
                      shape=shape, image=image)
    torch.testing.assert_close(ours, to_raw(expected))

    # native CLIPVisionEncode of a 2-image batch: penultimate_hidden_states [2, 257, D], start then end
    native = SimpleNamespace(penultimate_hidden_states=features.penultimate_hidden_states.clone())
    again = KinemaSampler().sample(m["dits"][FLF2V], m["conditioning"], m["latent"], **SAMPLER,
                                   start_image=m["start"], end_image=m["end"], vae=m["vae"],
                                   image_features=native)[0]["samples"]
    assert torch.equal(again, ours)


def test_i2v_14b_without_image_features_names_the_nodes(models):
    m = models
    with pytest.raises(ValueError, match=r"KinemaSampler \(wan2.1_i2v_480p.*KinemaCLIPVisionEncode"):
        KinemaSampler().sample(m["dits"][I2V], m["conditioning"], m["latent"], **SAMPLER, start_image=m["start"],
                               vae=m["vae"])


def test_flf2v_with_only_the_start_features_says_to_encode_both(models):
    m = models
    start_only = KinemaCLIPVisionEncode().encode(m["clip"], m["start"])[0]
    with pytest.raises(ValueError, match="encode both the start and the end image"):
        KinemaSampler().sample(m["dits"][FLF2V], m["conditioning"], m["latent"], **SAMPLER, start_image=m["start"],
                               end_image=m["end"], vae=m["vae"], image_features=start_only)


def test_animate_takes_the_reference_image_features(models):
    m = models
    features = KinemaCLIPVisionEncode().encode(m["clip"], m["start"], m["end"])[0]
    taken = KinemaAnimateConditioning._clip_features(features, features.penultimate_hidden_states.shape[-1])
    assert torch.equal(taken, m["clip_core"].encode(_rgb(m["start"])))  # the first image only


def test_generate_encodes_the_clip_features_itself(models, model_root):
    """kinema.generate with clip_vision= runs Wan2.1 FLF2V end to end (start + end image) as the nodes do."""
    import kinema
    from kinema.core.text import load_text_encoder

    m = models
    encoder = load_text_encoder(model_root / "text_encoders" / TEXT_ENCODER)
    settings = SamplerSettings(steps=2, cfg=1.0, shift=5.0, solver="euler", seed=1)
    out = kinema.generate(m["dits"][FLF2V].model, encoder, "a smile", width=W, height=H, frames=FRAMES,
                          settings=settings, vae=m["vae"].model, start_image=_rgb(m["start"]), end_image=_rgb(m["end"]),
                          clip_vision=kinema.load_clip_vision(model_root / "clip_vision" / CLIP_VISION))
    node = KinemaSampler().sample(m["dits"][FLF2V], m["conditioning"], m["latent"], seed=1, steps=2, cfg=1.0,
                                  shift=5.0, solver="euler", denoise=1.0, boundary=0.0, cfg_low_noise=0.0,
                                  start_image=m["start"], end_image=m["end"], vae=m["vae"],
                                  image_features=KinemaCLIPVisionEncode().encode(m["clip"], m["start"], m["end"])[0])
    torch.testing.assert_close(to_raw(out), node[0]["samples"])
