"""LoRA key formats: which keys each format explains and the official module and role it gives them.
The expected names are written out by hand from the official Wan, diffusers and kohya spellings."""
from __future__ import annotations

import pytest
import torch

from kinema.core.checkpoints import CheckpointError
from kinema.core.lora import lora_from_tensors
from kinema.core.lora.formats import COMFY, DIFFUSERS, KOHYA, OFFICIAL, diffusers_module


def names(layout, *keys: str) -> list:
    return list(layout.canonical_names(keys, "test.safetensors").values())


@pytest.mark.parametrize("kohya, official", [
    ("blocks_3_self_attn_q", "blocks.3.self_attn.q"),
    ("blocks_12_cross_attn_k_img", "blocks.12.cross_attn.k_img"),
    ("blocks_0_ffn_2", "blocks.0.ffn.2"),
    ("text_embedding_0", "text_embedding.0"),
    ("time_projection_1", "time_projection.1"),
    ("head_head", "head.head"),
    ("img_emb_proj_3", "img_emb.proj.3"),
])
def test_kohya_names_are_official_names_with_underscores(kohya, official):
    assert names(KOHYA, f"lora_unet_{kohya}.lora_down.weight", f"lora_unet_{kohya}.alpha") == [
        f"{official}.down", f"{official}.alpha"]


def test_kohya_names_only_linear_layers():
    assert KOHYA.unexplained(["lora_unet_blocks_0_norm3.lora_down.weight", "lora_unet_blocks_0_self_attn_norm_q.diff",
                              "lora_unet_blocks_0_self_attn_q.diff_b"]) == [
        "lora_unet_blocks_0_norm3.lora_down.weight", "lora_unet_blocks_0_self_attn_norm_q.diff"]


@pytest.mark.parametrize("diffusers, official", [
    ("blocks.1.attn1.to_out.0", "blocks.1.self_attn.o"),
    ("blocks.1.attn2.add_v_proj", "blocks.1.cross_attn.v_img"),
    ("blocks.1.ffn.net.0.proj", "blocks.1.ffn.0"),
    ("condition_embedder.time_proj", "time_projection.1"),
    ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
    ("proj_out", "head.head"),
])
def test_diffusers_modules_are_the_dit_layouts_renames(diffusers, official):
    keys = (f"transformer.{diffusers}.lora_A.weight", f"{diffusers}.lora_B.default.weight",
            f"base_model.model.{diffusers}.lora_B.bias")
    assert names(DIFFUSERS, *keys) == [f"{official}.down", f"{official}.up", f"{official}.up_bias"]
    assert [diffusers_module(key) for key in keys] == [diffusers] * 3


def test_low_rank_pairs_patch_only_linear_layers_of_the_main_blocks():
    refused = ["diffusion_model.blocks.0.norm3.lora_down.weight",  # a norm takes only full diffs
               "diffusion_model.vace_blocks.0.self_attn.q.lora_down.weight",  # VACE blocks are not patched
               "diffusion_model.head.diff_b"]  # `head` owns only its modulation
    accepted = ["diffusion_model.blocks.0.norm3.diff", "model.diffusion_model.blocks.0.self_attn.q.lora_A.weight",
                "diffusion_model.head.diff_m", "diffusion_model.blocks.7.diff_m", "diffusion_model.patch_embedding.diff_b"]
    assert COMFY.unexplained(refused + accepted) == refused
    assert DIFFUSERS.unexplained(["vace_blocks.0.attn1.to_q.lora_A.weight", "blocks.0.norm2.lora_A.weight"]) == [
        "vace_blocks.0.attn1.to_q.lora_A.weight", "blocks.0.norm2.lora_A.weight"]
    assert OFFICIAL.unexplained(["blocks.0.self_attn.q.lora_up.weight", accepted[0]]) == [accepted[0]]


def test_dora_is_refused_by_name():
    with pytest.raises(CheckpointError, match=r"dora\.safetensors: this is a DoRA \(key 'diffusion_model\.blocks\.0"
                                              r"\.self_attn\.q\.dora_scale'\)"):
        lora_from_tensors({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(2, 4),
                           "diffusion_model.blocks.0.self_attn.q.dora_scale": torch.zeros(4)}, "dora.safetensors")
