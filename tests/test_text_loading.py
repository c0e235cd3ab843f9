"""load_text_encoder: where the tokenizer comes from, and a clear error for every wrong file."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from kinema.core.checkpoints import CheckpointError
from kinema.core.text import Tokenizer, TokenizerError, load_text_encoder
from tiny_umt5 import hf_state_dict, official_state_dict, reference_hidden, save_tiny_umt5, tiny_spiece_processor

PROMPT = "A cat walks slowly on the green grass, 小猫."


def save(tmp_path, tensors, name="model.safetensors"):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return path


def matches_reference(encoder) -> bool:
    ids = tiny_spiece_processor().encode(PROMPT) + [1]
    (ours,) = encoder.encode([PROMPT])
    (ref,) = reference_hidden([ids])
    return (ours - ref).abs().max().item() <= 1e-4 * ref.abs().max().item()


def test_config_is_read_from_the_shapes(tmp_path):
    config = load_text_encoder(save_tiny_umt5(tmp_path, "official_pth")).config
    assert (config.d_model, config.num_heads, config.d_kv, config.d_ff, config.num_layers) == (32, 4, 6, 40, 2)
    assert config.vocab_size == tiny_spiece_processor().get_piece_size()


def test_full_encoder_decoder_t5_file_loads_its_encoder(tmp_path):
    tensors = hf_state_dict()
    tensors["decoder.block.0.layer.0.SelfAttention.q.weight"] = torch.zeros(24, 32)
    tensors["decoder.final_layer_norm.weight"] = torch.ones(32)
    tensors["lm_head.weight"] = torch.zeros(10, 32)
    encoder = load_text_encoder(save(tmp_path, tensors), tokenizer=save_tiny_umt5(tmp_path / "vocab", "hf").parent / "tokenizer")
    assert matches_reference(encoder)


def test_explicit_tokenizer_wins_over_embedded_one(tmp_path):
    spiece = tmp_path / "spiece.model"
    spiece.write_bytes(tiny_spiece_processor().serialized_model_proto())
    assert load_text_encoder(save_tiny_umt5(tmp_path, "comfy"), tokenizer=spiece).tokenizer.source == str(spiece)
    mine = Tokenizer.from_path(spiece)
    assert load_text_encoder(save_tiny_umt5(tmp_path, "comfy"), tokenizer=mine).tokenizer is mine


def test_pipeline_folder_finds_text_encoder_and_tokenizer(tmp_path):
    save_tiny_umt5(tmp_path, "hf")  # tmp_path/text_encoder + tmp_path/tokenizer, as diffusers Wan repos
    encoder = load_text_encoder(tmp_path)
    assert encoder.tokenizer.source.endswith("tokenizer/spiece.model")
    assert matches_reference(encoder)


@pytest.mark.parametrize("layout", ["official_pth", "comfy", "hf"])
def test_missing_tokenizer_says_where_to_get_it(tmp_path, layout):
    path = save_tiny_umt5(tmp_path, layout, embed_spiece=False)
    with pytest.raises(TokenizerError) as err:
        load_text_encoder(path)
    message = str(err.value)
    assert str(path) in message and "no tokenizer" in message
    assert "spiece.model" in message and "Wan-AI/Wan2.1-T2V-1.3B/google/umt5-xxl/spiece.model" in message


WRONG_FILES = {
    "dit": ({"patch_embedding.weight": torch.zeros(8, 16, 1, 2, 2), "blocks.0.self_attn.q.weight": torch.zeros(8, 8),
             "blocks.0.cross_attn.k.weight": torch.zeros(8, 8)}, "Wan diffusion model"),
    "comfy_dit": ({"model.diffusion_model.blocks.0.self_attn.q.weight": torch.zeros(8, 8)}, "Wan diffusion model"),
    "vae": ({"encoder.conv1.weight": torch.zeros(4, 3, 3, 3, 3), "decoder.conv1.weight": torch.zeros(4, 4, 3, 3, 3)},
            "VAE"),
    "clip_vision": ({"vision_model.embeddings.patch_embedding.weight": torch.zeros(8, 3, 14, 14)}, "CLIP vision"),
    "random": ({"foo.bar": torch.zeros(2)}, "found no umT5 tensors"),
}


@pytest.mark.parametrize("kind", WRONG_FILES)
def test_wrong_kind_of_model_file(tmp_path, kind):
    tensors, what = WRONG_FILES[kind]
    path = save(tmp_path, tensors, f"{kind}.safetensors")
    with pytest.raises(CheckpointError) as err:
        load_text_encoder(path)
    message = str(err.value)
    assert str(path) in message and what in message
    assert "umt5_xxl_fp8_e4m3fn_scaled.safetensors" in message  # says what to pick instead


def test_t5_v1_1_with_shared_bias_is_not_umt5(tmp_path):
    tensors = hf_state_dict()
    del tensors["encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"]
    with pytest.raises(CheckpointError, match=r"t5\.safetensors: only blocks \[0\] have a relative position bias.*T5 v1\.1"):
        load_text_encoder(save(tmp_path, tensors, "t5.safetensors"))


def test_unknown_keys_are_named(tmp_path):
    tensors = official_state_dict()
    tensors["blocks.0.attn.q.lora_A.weight"] = torch.zeros(4, 32)
    with pytest.raises(CheckpointError, match=r"merged\.safetensors: 1 key\(s\) that no rule of the official umT5 encoder layout explains.*lora_A"):
        load_text_encoder(save(tmp_path, tensors, "merged.safetensors"))


def test_missing_tensor_is_named(tmp_path):
    tensors = official_state_dict()
    del tensors["blocks.1.ffn.fc2.weight"]
    with pytest.raises(CheckpointError, match=r"part\.safetensors: incomplete .*missing \['blocks\.1\.ffn\.fc2\.weight'\].*download it again"):
        load_text_encoder(save(tmp_path, tensors, "part.safetensors"))


@pytest.mark.parametrize("layout", ["official_pth", "comfy"])
def test_truncated_file(tmp_path, layout):
    path = save_tiny_umt5(tmp_path, layout)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{path.name}: not a readable .*(truncated|corrupt)"):
        load_text_encoder(path)


def test_tokenizer_of_another_model_is_refused(tmp_path):
    encoder = load_text_encoder(save_tiny_umt5(tmp_path, "comfy"))
    encoder.tokenizer = Tokenizer(lambda text: [100_000], end_id=1, pad_id=0, source="big_vocab.model")
    with pytest.raises(ValueError, match=r"token id 100000 is outside.*big_vocab\.model.*does not belong"):
        encoder.encode(["anything"])


def test_wrong_shape_is_named(tmp_path):
    tensors = official_state_dict()
    tensors["blocks.1.attn.o.weight"] = torch.zeros(32, 30)
    with pytest.raises(CheckpointError, match=r"odd\.safetensors: tensor shapes do not fit.*blocks\.1\.attn\.o\.weight"):
        load_text_encoder(save(tmp_path, tensors, "odd.safetensors"))
