"""The key-renaming engine every checkpoint reader uses (core/checkpoints/renaming.py), on hand-made
tables whose right answers are written out by hand."""
from __future__ import annotations

import pytest
import torch

from kinema.core.checkpoints import CheckpointError
from kinema.core.checkpoints.renaming import KeyLayout, compose, dropped, identity, under_prefix


def tensors(*keys: str) -> dict[str, torch.Tensor]:
    return {key: torch.full((1,), float(i)) for i, key in enumerate(keys)}


def test_unknown_key_is_an_error_naming_the_file_and_the_key():
    layout = KeyLayout("toy", identity([r"a\.weight"]), hint="Load a toy file instead")
    with pytest.raises(CheckpointError) as info:
        layout.to_canonical(tensors("a.weight", "b.weight", "c.bias"), "toy.safetensors")
    message = str(info.value)
    assert message.startswith("toy.safetensors: 2 key(s) that no rule of the toy layout explains")
    assert "['b.weight', 'c.bias']" in message and message.endswith("Load a toy file instead")
    assert layout.unexplained(["c.bias", "a.weight", "b.weight"]) == ["c.bias", "b.weight"]  # file order


def test_rules_match_whole_keys_only():
    layout = KeyLayout("toy", identity([r"a\.weight"]))
    assert layout.unexplained(["a.weight.extra", "x.a.weight", "a.weight"]) == ["a.weight.extra", "x.a.weight"]


def test_dropped_keys_disappear_and_the_first_matching_rule_decides():
    layout = KeyLayout("toy", dropped([r"blur\.\d+\.kernel"]) + ((r"(\w+)\.(weight|bias)", r"renamed.\1.\2"),))
    source = tensors("blur.0.kernel", "conv.weight", "blur.1.kernel", "conv.bias")
    out = layout.to_canonical(source, "toy.pth")
    assert list(out) == ["renamed.conv.weight", "renamed.conv.bias"]
    assert out["renamed.conv.bias"] is source["conv.bias"]  # renaming never copies a tensor


def test_function_template_does_index_arithmetic():
    layout = KeyLayout("toy", ((r"res_blocks\.(\d+)\.weight", lambda m: f"convs.{int(m[1]) + 1}.weight"),))
    assert list(layout.to_canonical(tensors("res_blocks.0.weight", "res_blocks.9.weight"), "f")) == [
        "convs.1.weight", "convs.10.weight"]


def test_targets_refuse_names_the_canonical_layout_lacks():
    rules = ((r"(\w+)\.to_([qk])\.(weight|bias)", r"\1.\2.\3"),)
    layout = KeyLayout("toy", rules, targets=(r"attn\.[qk]\.weight", r"attn\.q\.bias"))
    assert layout.unexplained(["attn.to_q.weight", "attn.to_k.bias", "attn.to_q.bias", "mlp.to_q.weight"]) == [
        "attn.to_k.bias", "mlp.to_q.weight"]


def test_two_keys_onto_one_name_is_an_error():
    layout = KeyLayout("toy", ((r"(?:model\.)?(\w+\.weight)", r"\1"),))
    with pytest.raises(CheckpointError, match=r"two\.safetensors: keys 'a\.weight' and 'model\.a\.weight' both hold "
                                              r"'a\.weight'"):
        layout.to_canonical(tensors("a.weight", "model.a.weight"), "two.safetensors")


def test_finish_runs_after_renaming():
    def stack_kv(t):
        t["kv.weight"] = torch.cat([t.pop("k.weight"), t.pop("v.weight")])
        return t

    layout = KeyLayout("toy", ((r"to_([kv])\.weight", r"\1.weight"),), finish=stack_kv)
    out = layout.to_canonical({"to_k.weight": torch.zeros(2), "to_v.weight": torch.ones(2)}, "f")
    assert torch.equal(out["kv.weight"], torch.tensor([0.0, 0.0, 1.0, 1.0]))


def test_under_prefix_keeps_the_inner_rules_groups():
    rules = ((r"blocks\.(\d+)\.attn\.to_([qk])", r"blocks.\1.\2"),) + dropped([r"unused"])
    layout = KeyLayout("toy", under_prefix(r"(?:model\.)?(diffusion_model\.)", rules))
    out = layout.to_canonical(tensors("diffusion_model.blocks.3.attn.to_k", "model.diffusion_model.unused"), "f")
    assert list(out) == ["blocks.3.k"]
    assert layout.unexplained(["blocks.3.attn.to_k"]) == ["blocks.3.attn.to_k"]  # the prefix is required here


def test_compose_renames_head_and_tail_by_their_own_tables():
    modules = ((r"blocks\.(\d+)\.attn1\.to_([qkv])", r"blocks.\1.self_attn.\2"),
               (r"blocks\.(\d+)\.attn1\.to_out\.0", r"blocks.\1.self_attn.o"),
               (r"blocks\.\d+\.norm_added_q", None))
    parts = ((r"lora_A(?:\.\w+)?\.weight", "down"), (r"lora_B\.weight", "up"), (r"alpha", None))
    layout = KeyLayout("toy", compose(modules, parts))
    out = layout.to_canonical(tensors("blocks.2.attn1.to_v.lora_A.default.weight", "blocks.2.attn1.to_out.0.lora_B.weight",
                                      "blocks.2.attn1.to_v.alpha", "blocks.0.norm_added_q.lora_A.weight"), "f")
    assert list(out) == ["blocks.2.self_attn.v.down", "blocks.2.self_attn.o.up"]  # alpha and the module dropped
    assert layout.unexplained(["blocks.2.attn1.to_v.lora_C.weight", "blocks.2.attn2.to_v.alpha"]) == [
        "blocks.2.attn1.to_v.lora_C.weight", "blocks.2.attn2.to_v.alpha"]
