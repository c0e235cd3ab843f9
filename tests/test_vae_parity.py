"""Our Wan VAEs against diffusers' AutoencoderKLWan (the independent reference), per file layout and dtype."""
from __future__ import annotations

import pytest
import torch

from kinema.core.vae import load_vae
from kinema.tests.tiny_vae import TINY_FRAME, save_tiny_vae, tiny_diffusers_vae

LAYOUTS = ("official_pth", "comfy", "diffusers")
FRAMES = (1, 5, 9)


def _stats(vae):
    shape = (1, -1, 1, 1, 1)
    return torch.tensor(vae.config.latents_mean).view(shape), torch.tensor(vae.config.latents_std).view(shape)


@pytest.fixture(scope="module", params=("2.1", "2.2"))
def reference(request):
    """(version, {frames: (video, raw latent mean, decoded video)}) from diffusers, computed once."""
    version = request.param
    model = tiny_diffusers_vae(version)
    h, w = TINY_FRAME[version]
    gen = torch.Generator().manual_seed(1)
    cases = {}
    with torch.no_grad():
        for t in FRAMES:
            video = torch.rand(1, 3, t, h, w, generator=gen) * 2 - 1
            mu = model.encode(video).latent_dist.mean
            cases[t] = (video, mu, model.decode(mu).sample)
    return version, cases


def _assert_close(ours, ref, what):
    err = (ours - ref).abs().max().item()
    bound = 1e-4 * ref.abs().max().item()
    assert err <= bound, f"{what}: max error {err:.3g} > {bound:.3g}"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_encode_and_decode_match_diffusers(reference, layout, tmp_path):
    version, cases = reference
    vae = load_vae(save_tiny_vae(tmp_path, version, layout))
    assert vae.config.version == version
    mean, std = _stats(vae)
    for t, (video, mu, decoded) in cases.items():
        latents = vae.encode(video)
        assert latents.shape == mu.shape
        _assert_close(latents * std + mean, mu, f"{version} {layout} encode T={t}")
        _assert_close(vae.decode((mu - mean) / std), decoded, f"{version} {layout} decode T={t}")


def test_latents_are_normalised_with_published_stats(tmp_path):
    vae21 = load_vae(save_tiny_vae(tmp_path, "2.1", "comfy"))
    vae22 = load_vae(save_tiny_vae(tmp_path, "2.2", "official_pth"))
    assert vae21.config.latents_mean[:2] == (-0.7571, -0.7089) and vae21.config.latents_std[-1] == 1.9160
    assert vae22.config.latents_mean[:2] == (-0.2289, -0.0052) and vae22.config.latents_std[-1] == 0.7744
    assert (vae21.config.spatial_stride, vae22.config.spatial_stride) == (8, 16)
    assert vae21.config.temporal_stride == vae22.config.temporal_stride == 4


@pytest.mark.parametrize("file_dtype,layout", ((torch.bfloat16, "comfy"), (torch.float16, "diffusers")))
def test_16bit_files_load_exactly(file_dtype, layout, tmp_path):
    """A 16-bit file computed in fp32 equals diffusers with the same rounded weights."""
    model = tiny_diffusers_vae("2.1").to(file_dtype).float()
    video = torch.rand(1, 3, 5, *TINY_FRAME["2.1"], generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        mu = model.encode(video).latent_dist.mean
        decoded = model.decode(mu).sample
    vae = load_vae(save_tiny_vae(tmp_path, "2.1", layout, dtype=file_dtype))
    mean, std = _stats(vae)
    _assert_close(vae.encode(video) * std + mean, mu, f"{file_dtype} encode")
    _assert_close(vae.decode((mu - mean) / std), decoded, f"{file_dtype} decode")


@pytest.mark.parametrize("dtype", (torch.bfloat16, torch.float16))
def test_16bit_compute_stays_close(dtype, tmp_path):
    path = save_tiny_vae(tmp_path, "2.2", "comfy")
    exact, low = load_vae(path), load_vae(path, dtype=dtype)
    assert low.dtype == dtype
    video = torch.rand(1, 3, 1, *TINY_FRAME["2.2"], generator=torch.Generator().manual_seed(3)) * 2 - 1
    latents = exact.encode(video)
    assert (low.encode(video) - latents).abs().max() <= 0.05 * latents.abs().max()
    ref = exact.decode(latents)
    out = low.decode(latents)
    assert out.dtype == torch.float32
    assert (out - ref).abs().mean() <= 0.02
