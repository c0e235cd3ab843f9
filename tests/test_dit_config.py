"""DiTConfig inferred from tensor shapes names the released presets; the module tree built from a
preset has exactly the parameter and tensor counts of the real checkpoints (Wan spec 2.10)."""
from __future__ import annotations

import logging

import pytest
import torch

from kinema.core.dit import DiTConfig, WanDiT
from kinema.core.dit.config import PRESETS, infer_config

# (preset, parameters, tensors in the official state dict), from the Wan spec, which matched them
# against the published file sizes.
RELEASED = [
    ("wan2.1-t2v-1.3B", 1_418_996_800, 825),
    ("wan-t2v-14B", 14_288_491_584, 1095),
    ("wan2.2-i2v-A14B", 14_288_901_184, 1095),
    ("wan2.1-i2v-14B", 16_394_878_784, 1303),
    ("wan2.1-flf2v-14B", 16_395_536_704, 1304),
    ("wan2.2-ti2v-5B", 4_999_787_712, 825),
]


def _meta_model(preset_name: str) -> WanDiT:
    p = next(p for p in PRESETS if p.name == preset_name)
    config = DiTConfig(p.dim, p.ffn_dim, p.num_layers, p.dim // 128, p.in_dim, p.out_dim,
                       image_dim=p.image_dim, image_tokens=p.image_tokens)
    with torch.device("meta"):
        return WanDiT(config)


@pytest.mark.parametrize("name,params,tensors", RELEASED)
def test_presets_have_the_released_sizes_and_are_recognised(name, params, tensors):
    state = _meta_model(name).state_dict()
    assert len(state) == tensors
    assert sum(t.numel() for t in state.values()) == params
    config = infer_config(state, "test")
    assert config.preset == name and config.head_dim == 128


def test_custom_size_is_allowed_and_logged(caplog):
    state = _meta_model("wan2.1-t2v-1.3B").state_dict()
    state = {k: v for k, v in state.items() if not k.startswith("blocks.29.")}  # 29 layers
    with caplog.at_level(logging.INFO, logger="kinema.core.dit.config"):
        config = infer_config(state, "test")
    assert (config.preset, config.num_layers) == ("custom", 29)
    assert "custom Wan DiT size" in caplog.text


def test_head_count_rule():
    state = _meta_model("wan2.1-t2v-1.3B").state_dict()
    assert infer_config(state, "f").num_heads == 12  # dim / 128
    assert infer_config(state, "f", config_json={"num_attention_heads": 24, "attention_head_dim": 64}).num_heads == 24
    assert infer_config(state, "f", config_json={"dim": 1536, "num_heads": 6}).num_heads == 6
    # a config.json of some other model says nothing about this one
    assert infer_config(state, "f", config_json={"dim": 5120, "num_heads": 40}).num_heads == 12
    assert infer_config(state, "f", num_heads=24, config_json={"dim": 1536, "num_heads": 6}).num_heads == 24


def test_text_len_comes_from_the_models_own_config_json():
    state = _meta_model("wan2.1-t2v-1.3B").state_dict()
    assert infer_config(state, "f").text_len == 512  # every Wan release
    assert infer_config(state, "f", config_json={"dim": 1536, "num_heads": 12, "text_len": 32}).text_len == 32
    assert infer_config(state, "f", config_json={"dim": 5120, "text_len": 32}).text_len == 512  # another model's
    from kinema.core.checkpoints.io import CheckpointError

    with pytest.raises(CheckpointError, match="text_len=0"):
        infer_config(state, "f", config_json={"dim": 1536, "text_len": 0})
