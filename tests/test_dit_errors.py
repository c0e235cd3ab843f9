"""Wrong or broken files given to the DiT loader get an error that names the file, what it is,
and what to do; wrong call arguments get a clear ValueError."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from kinema.core.checkpoints import CheckpointError
from kinema.core.dit import load_dit

from tiny_dit import COMFY_PREFIX, make_tiny_diffusers_dit, save_tiny_dit, tiny_inputs
from tiny_umt5 import save_tiny_umt5
from tiny_vae import save_tiny_vae


def _expect(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        load_dit(path)
    message = str(info.value)
    for fragment in (str(path.name), *fragments):
        assert fragment in message, message
    return message


@pytest.mark.parametrize("layout", ["official_pth", "comfy", "diffusers"])
def test_vae_file(tmp_path, layout):
    _expect(save_tiny_vae(tmp_path, "2.1", layout), "looks like a Wan VAE", "use the VAE loader")


@pytest.mark.parametrize("layout", ["official_pth", "comfy"])
def test_text_encoder_file(tmp_path, layout):
    _expect(save_tiny_umt5(tmp_path, layout), "text encoder", "use the text encoder loader")


@pytest.mark.parametrize(
    "key",
    [
        "diffusion_model.blocks.0.self_attn.q.lora_down.weight",  # kohya / ComfyUI
        "transformer.blocks.0.attn1.to_q.lora_A.weight",  # diffusers / PEFT
        "blocks.0.self_attn.q.lora_up.weight",
    ],
)
def test_lora_file(tmp_path, key):
    path = tmp_path / "wan_lora.safetensors"
    save_file({key: torch.zeros(4, 8), key.replace("down", "up").replace("lora_A", "lora_B"): torch.zeros(8, 4)}, str(path))
    _expect(path, "this is a LoRA", "LoRA node")


def test_truncated_file(tmp_path):
    path = save_tiny_dit(tmp_path, "comfy", "t2v")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _expect(path, "truncated")


def test_unknown_key_is_named(tmp_path):
    path = save_tiny_dit(tmp_path, "comfy_prefixed", "t2v")
    tensors = load_file(str(path))
    tensors[COMFY_PREFIX + "blocks.1.self_attn.gate_proj.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(path))
    _expect(path, "model.diffusion_model.blocks.1.self_attn.gate_proj.weight", "no rule")


def test_missing_tensor(tmp_path):
    path = save_tiny_dit(tmp_path, "comfy", "t2v")
    tensors = load_file(str(path))
    del tensors["blocks.1.cross_attn.norm_k.weight"]
    save_file(tensors, str(path))
    _expect(path, "blocks.1.cross_attn.norm_k.weight")


def test_unknown_head_count(tmp_path):
    model = make_tiny_diffusers_dit("t2v", head_dim=24)  # width 48, not a multiple of 128, no config.json
    _expect(save_tiny_dit(tmp_path, "comfy", "t2v", model=model), "num_heads=", "config.json")


def test_vace_and_two_expert_folder(tmp_path):
    path = save_tiny_dit(tmp_path / "vace", "comfy", "t2v")
    tensors = load_file(str(path))
    tensors["vace_blocks.0.after_proj.weight"] = torch.zeros(2, 2)
    save_file(tensors, str(path))
    _expect(path, "VACE")
    for expert in ("high_noise_model", "low_noise_model"):
        save_tiny_dit(tmp_path / "a14b" / expert, "official", "t2v")
    _expect(tmp_path / "a14b", "two Wan2.2 A14B experts", "high_noise_model")


def test_bad_call_arguments(tmp_path):
    model = make_tiny_diffusers_dit("i2v_clip")
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "i2v_clip", model=model))
    inputs = tiny_inputs(model)
    x, t, context, y, clip = (inputs[k] for k in ("x", "t", "context", "y", "clip_fea"))
    with pytest.raises(ValueError, match="pass y with 20 channels"):
        dit(x, t, context, clip_fea=clip)
    with pytest.raises(ValueError, match="needs clip_fea"):
        dit(x, t, context, y=y)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        dit(x[..., :5], t, context, y=y[..., :5], clip_fea=clip)
    with pytest.raises(ValueError, match="per-token"):
        dit(x, torch.ones(1, 7), context, y=y, clip_fea=clip)
    long_context = torch.randn(513, context[0].shape[1])
    torch.testing.assert_close(dit(x, t, [long_context], y=y, clip_fea=clip),
                               dit(x, t, [long_context[:512]], y=y, clip_fea=clip))  # cut at text_len, as Wan's tokenizer
    with pytest.raises(ValueError, match="umT5 encoder output"):
        dit(x, t, [torch.zeros(5, 3)], y=y, clip_fea=clip)
    from kinema.kernels.attention import AttentionUnavailable

    with pytest.raises(AttentionUnavailable):
        dit.set_attention("no-such-backend")
