"""The demo model's files load with Kinema's public loaders and mean what the trainers assume."""
from __future__ import annotations

import json

import torch

from kinema.core.dit import load_dit
from kinema.core.text import load_text_encoder
from kinema.core.vae import load_vae
from kinema.demo import train_dit, train_vae
from kinema.demo.text_encoder import DEMO_UMT5, write_text_encoder


def test_text_encoder_file_matches_transformers_umt5(tmp_path):
    from transformers import UMT5Config, UMT5EncoderModel
    from safetensors.torch import load_file

    path = tmp_path / "umt5.safetensors"
    write_text_encoder(path)
    encoder = load_text_encoder(path)  # tokenizer from the embedded spiece_model
    prompt = "an orange star rising against a black background"
    ours = encoder.encode([prompt])[0]

    c = DEMO_UMT5
    reference = UMT5EncoderModel(UMT5Config(
        vocab_size=c.vocab_size, d_model=c.d_model, d_kv=c.d_kv, d_ff=c.d_ff, num_layers=c.num_layers,
        num_heads=c.num_heads, feed_forward_proj="gated-gelu", dropout_rate=0.0)).eval()
    tensors = load_file(str(path))
    tensors.pop("spiece_model")
    reference.load_state_dict(tensors, strict=False)  # encoder.embed_tokens is tied to shared
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor([encoder.tokenizer([prompt])[0]])).last_hidden_state[0]
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_text_encoder_file_is_reproducible(tmp_path):
    write_text_encoder(tmp_path / "a.safetensors")
    write_text_encoder(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_vae_export_folds_latent_statistics_without_changing_decoding(tmp_path):
    network = train_vae.build_network(seed=0)
    with torch.no_grad():  # an untrained network whose latents are far from N(0, 1)
        network.conv1.weight.mul_(3.0)
        network.conv1.bias.add_(1.0)
    video = train_vae.calibration_videos(2)[:, :, :5]  # [2, 3, 5, 64, 64]
    path = tmp_path / "vae.safetensors"
    train_vae.export(network, path, videos=video)
    vae = load_vae(path)
    latents = vae.encode(video)  # [2, 16, 2, 8, 8]
    # Normalised by load_vae with Wan2.1's published constants, the folded latents of the
    # calibration clips have exactly zero mean and unit std per channel.
    torch.testing.assert_close(latents.mean(dim=(0, 2, 3, 4)), torch.zeros(16), rtol=0, atol=1e-4)
    torch.testing.assert_close(latents.std(dim=(0, 2, 3, 4)), torch.ones(16), rtol=0, atol=1e-4)
    with torch.no_grad():
        expected = train_vae.decode(network, train_vae.encode(network, video)).clamp(-1, 1)
    torch.testing.assert_close(vae.decode(latents), expected, rtol=0, atol=1e-4)


def test_training_forward_is_the_loaded_models_forward(tmp_path):
    model = train_dit.build_dit(seed=0)
    with torch.no_grad():  # give the zero-initialised parts values, so the comparison means something
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape))
    x = torch.randn(2, 16, 5, 8, 8)
    t = torch.tensor([300.0, 800.0])
    context = [torch.randn(7, DEMO_UMT5.d_model), torch.randn(1, DEMO_UMT5.d_model)]

    out = train_dit.velocity(model, x, t, context)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())

    path = tmp_path / "diffusion_models" / "dit.safetensors"
    train_dit.export(model, {k: p.detach() for k, p in model.named_parameters()}, path)
    assert json.loads((path.parent / "config.json").read_text())["num_heads"] == train_dit.DEMO_DIT.num_heads
    loaded = load_dit(path)
    assert (loaded.config.num_heads, loaded.config.text_len) == (4, 32)  # from config.json, not Wan's defaults
    torch.testing.assert_close(loaded(x, t, context), out.detach(), rtol=1e-5, atol=1e-5)


def test_a_stopped_run_resumes_where_it_was(tmp_path):
    from types import SimpleNamespace

    import pytest

    from kinema.demo.training import RunDir, checkpoint, start_or_resume

    def fresh():
        model = torch.nn.Linear(3, 2)
        return model, torch.optim.AdamW(model.parameters(), lr=0.1)

    run = RunDir(tmp_path / "run")
    model, optimizer = fresh()
    ema, step, state = start_or_resume(run, model, optimizer, resume=True)  # nothing to resume: a fresh start
    assert (step, state) == (0, None) and torch.equal(ema["weight"], model.weight)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    run.save(checkpoint(model, optimizer, ema, 7, SimpleNamespace(lr=0.1), warmup_start=3), 7)

    again, again_optimizer = fresh()
    ema2, step2, state2 = start_or_resume(run, again, again_optimizer, resume=True)
    assert (step2, state2["warmup_start"]) == (7, 3)
    torch.testing.assert_close(again.weight, model.weight, rtol=0, atol=0)
    assert again_optimizer.state_dict()["state"][0]["step"] == 1
    with pytest.raises(SystemExit, match="pass --resume"):  # never restart over an existing run
        start_or_resume(run, *fresh(), resume=False)


def test_latent_pool_key_ignores_the_decoder(tmp_path):
    """A decoder fine-tune keeps the DiT's encoded training clips valid; an encoder change does not."""
    from safetensors.torch import save_file

    from kinema.demo.finetune_decoder import encoder_sha256

    tensors = {"encoder.conv1.weight": torch.randn(4, 3), "conv1.bias": torch.randn(4),
               "decoder.head.weight": torch.randn(3, 4), "conv2.bias": torch.randn(4)}
    save_file(tensors, tmp_path / "a.safetensors")
    save_file({**tensors, "decoder.head.weight": torch.randn(3, 4), "conv2.bias": torch.randn(4)},
              tmp_path / "b.safetensors")
    save_file({**tensors, "conv1.bias": torch.randn(4)}, tmp_path / "c.safetensors")
    a, b, c = (encoder_sha256(tmp_path / f"{n}.safetensors") for n in "abc")
    assert a == b != c
