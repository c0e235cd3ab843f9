"""Bad input to the VAE gets a clear error that names the problem and the fix."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from kinema.core.checkpoints.io import CheckpointError
from kinema.core.vae import WAN21, WAN22, load_vae
from kinema.core.vae.loader import infer_config
from kinema.core.vae.network import WanVAENetwork
from kinema.tests.tiny_vae import TINY_FRAME, save_tiny_vae


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return load_vae(save_tiny_vae(tmp_path_factory.mktemp("vae"), "2.1", "comfy"))


def test_full_size_layouts_match_the_published_files():
    """Key counts and shapes of the real files (wan_models.md 3.1/3.2), built on the meta device."""
    with torch.device("meta"):
        net21, net22 = WanVAENetwork(WAN21), WanVAENetwork(WAN22)
    sd21, sd22 = net21.state_dict(), net22.state_dict()
    assert len(sd21) == 194 and len(sd22) == 196
    assert sum(t.numel() for t in sd21.values()) == 126_892_531
    assert sum(t.numel() for t in sd22.values()) == 704_688_668
    assert sd21["decoder.upsamples.3.time_conv.weight"].shape == (768, 384, 3, 1, 1)
    assert sd21["decoder.upsamples.4.shortcut.weight"].shape == (384, 192, 1, 1, 1)
    assert sd21["encoder.downsamples.5.time_conv.weight"].shape == (192, 192, 3, 1, 1)
    assert sd22["decoder.upsamples.0.upsamples.3.time_conv.weight"].shape == (2048, 1024, 3, 1, 1)
    assert sd22["decoder.upsamples.2.upsamples.0.shortcut.weight"].shape == (512, 1024, 1, 1, 1)
    assert sd22["encoder.conv1.weight"].shape == (160, 12, 3, 3, 3)
    assert sd22["decoder.head.2.weight"].shape == (12, 256, 3, 3, 3)
    assert infer_config(sd21, "x") == WAN21 and infer_config(sd22, "x") == WAN22


def test_wrong_channel_count(vae):
    with pytest.raises(ValueError, match="3 colour channels.*got 4"):
        vae.encode(torch.zeros(1, 4, 1, *TINY_FRAME["2.1"]))
    with pytest.raises(ValueError, match="channels-last"):
        vae.encode(torch.zeros(1, 1, 24, 40, 3))
    with pytest.raises(ValueError, match="decodes 16-channel latents; got 48.*Wan2.2"):
        vae.decode(torch.zeros(1, 48, 1, 3, 5))


def test_frame_count_not_4k_plus_1(vae):
    with pytest.raises(ValueError, match=r"4k\+1 frames; got 6\. Trim to 5 or pad to 9"):
        vae.encode(torch.zeros(1, 3, 6, *TINY_FRAME["2.1"]))


def test_size_not_a_multiple_of_the_stride(vae):
    with pytest.raises(ValueError, match="divisible by 8; got 20x40. Resize or crop to 16x40"):
        vae.encode(torch.zeros(1, 3, 1, 20, 40))


def test_wrong_value_range_and_dtype(vae):
    with pytest.raises(ValueError, match=r"values in \[-1, 1\].*127.5"):
        vae.encode(torch.full((1, 3, 1, 24, 40), 200.0))
    with pytest.raises(ValueError, match="float video"):
        vae.encode(torch.zeros(1, 3, 1, 24, 40, dtype=torch.uint8))


def test_not_a_5d_latent(vae):
    with pytest.raises(ValueError, match=r"latents \[B, 16, T, h, w\]; got \(16, 3, 5\)"):
        vae.decode(torch.zeros(16, 3, 5))


def test_dit_file_given_to_the_vae_loader(tmp_path):
    path = tmp_path / "wan2.1_t2v_1.3B.safetensors"
    save_file({"model.diffusion_model.blocks.0.self_attn.q.weight": torch.zeros(2, 2),
               "model.diffusion_model.patch_embedding.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match=r"wan2.1_t2v_1.3B.safetensors: this is a Wan diffusion model \(DiT\)"
                                              r".*not a Wan VAE"):
        load_vae(path)


def test_text_encoder_and_unknown_files(tmp_path):
    t5 = tmp_path / "umt5.safetensors"
    save_file({"shared.weight": torch.zeros(2, 2), "encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(2, 2)},
              str(t5))
    with pytest.raises(CheckpointError, match="text encoder"):
        load_vae(t5)
    other = tmp_path / "other.safetensors"
    save_file({"foo.weight": torch.zeros(1)}, str(other))
    with pytest.raises(CheckpointError, match="not a Wan VAE checkpoint.*foo.weight"):
        load_vae(other)


def test_truncated_or_foreign_keys(tmp_path):
    from safetensors.torch import load_file

    path = save_tiny_vae(tmp_path, "2.1", "comfy")
    tensors = load_file(str(path))
    del tensors["decoder.head.0.gamma"]
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=r"missing \['decoder.head.0.gamma'\]"):
        load_vae(path)
    folder = save_tiny_vae(tmp_path, "2.1", "diffusers")
    weights = folder / "diffusion_pytorch_model.safetensors"
    tensors = load_file(str(weights))
    tensors["decoder.mystery.weight"] = torch.zeros(1)
    save_file(tensors, str(weights))
    with pytest.raises(CheckpointError, match=r"no rule of the diffusers AutoencoderKLWan layout explains, first: \['decoder\.mystery\.weight'\]"):
        load_vae(folder)


def test_decode_to_file_takes_one_video(vae, tmp_path):
    with pytest.raises(ValueError, match=r"batch of 2; pass latents\[i:i\+1\]"):
        vae.decode_to_file(torch.zeros(2, 16, 1, 3, 5), tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
