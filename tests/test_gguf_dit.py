"""A tiny Wan DiT in a GGUF file (ComfyUI-GGUF's layout, Q8_0 and Q4_K) runs like our DiT on the
weights the file holds, dequantised by gguf's numpy reference: resident, block-streamed, and with
LoRAs on the fly. The weights stay quantised in memory; GGUFs of other models are refused."""
from __future__ import annotations

import functools
from typing import Optional

import gguf
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from kinema.core.checkpoints.io import CheckpointError
from kinema.core.dit import load_dit
from kinema.core.dit.streaming import BlockStreaming, load_streamed_dit, streamer_of
from kinema.core.layers import Linear
from kinema.core.lora import apply_loras, lora_from_tensors
from tiny_dit import COMFY_PREFIX, make_tiny_diffusers_dit, official_state_dict, relative_error, tiny_inputs
from tiny_gguf import save, write_comfy_gguf
from tiny_lora import GLOBAL_LINEARS, block_modules, comfy_lora, random_patches

TOLERANCE = 1e-5  # relative, as issue 14 asks (measured: 0, the dequantised values are identical)
# A Q4_K_M-like mix: some tensors one or two types larger (llama-quantize's choice per tensor).
Q4_K_M_LARGER = {"ffn.2.": "Q6_K", "self_attn.v.": "Q5_K"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """weight type -> (diffusers model, GGUF path, safetensors path of the dequantised weights)."""

    @functools.cache
    def write(weight_type: str, prefix: str = "", arch: Optional[str] = "wan", every_2d: bool = False,
              variant: str = "t2v"):
        model = make_tiny_diffusers_dit(variant)
        folder = tmp_path_factory.mktemp(f"gguf_{variant}_{weight_type}")
        path = folder / f"wan_tiny-{weight_type}.gguf"
        larger = Q4_K_M_LARGER if weight_type == "Q4_K" else None
        held = write_comfy_gguf(path, official_state_dict(model), weight_type, prefix=prefix, arch=arch,
                                every_2d=every_2d, larger=larger)
        dequantised = folder / "dequantised.safetensors"
        save_file({k: v.contiguous() for k, v in held.items()}, str(dequantised))
        return model, path, dequantised

    return write


def _run(dit, inputs: dict) -> torch.Tensor:
    with torch.inference_mode():
        return dit(**{k: v for k, v in inputs.items() if v is not None})


def _quantised_linears(dit) -> dict[str, str]:
    return {name: m.quant.name for name, m in dit.named_modules() if isinstance(m, Linear) and m.quant is not None}


@pytest.mark.parametrize("weight_type, prefix, arch, every_2d", [
    ("Q8_0", "", "wan", False), ("Q4_K", "", "wan", False),  # Q4_K with some Q5_K and Q6_K, as Q4_K_M files
    ("Q8_0", COMFY_PREFIX, "wan", False),  # files that kept ComfyUI's prefix
    ("Q8_0", "", None, False),  # stable-diffusion.cpp's files name no architecture: told by their tensor names
    ("Q4_K", "", "wan", True),  # embeddings and head quantised too, rows of 64 stored as rows of 256
])
def test_gguf_equals_dequantised_weights(files, weight_type, prefix, arch, every_2d):
    model, path, dequantised = files(weight_type, prefix, arch, every_2d)
    dit = load_dit(path)
    quantised = _quantised_linears(dit)
    # Every block Linear keeps the file's blocks (uint8) in memory.
    assert quantised["blocks.1.ffn.0"] == weight_type and dit.blocks[1].ffn[0].weight.dtype == torch.uint8
    ffn = dit.blocks[0].ffn[2]
    assert ffn.weight.numel() == ffn.quant.nbytes((ffn.out_features, ffn.in_features)) < 2 * ffn.in_features * ffn.out_features
    if weight_type == "Q4_K":
        assert (quantised["blocks.0.ffn.2"], quantised["blocks.0.self_attn.v"]) == ("Q6_K", "Q5_K")
    if every_2d:  # comfy.gguf.orig_shape gave the torch shape back
        assert quantised["text_embedding.0"] == quantised["head.head"] == weight_type
    else:
        assert "text_embedding.0" not in quantised and dit.text_embedding[0].weight.dtype == torch.float16
    inputs = tiny_inputs(model)
    reference = _run(load_dit(dequantised), inputs)
    assert relative_error(_run(dit, inputs), reference) <= TOLERANCE


def test_vace_gguf_equals_dequantised_weights(files):
    """VACE: its control blocks' Linears quantised, its 5-D patch embedding added back in F32."""
    model, path, dequantised = files("Q8_0", variant="vace")
    dit = load_dit(path)
    quantised = _quantised_linears(dit)
    assert quantised["vace_blocks.0.before_proj"] == quantised["vace_blocks.1.self_attn.q"] == "Q8_0"
    inputs = tiny_inputs(model)
    assert relative_error(_run(dit, inputs), _run(load_dit(dequantised), inputs)) <= TOLERANCE


@pytest.mark.parametrize("weight_type", ["Q8_0", "Q4_K"])
@pytest.mark.parametrize("storage", ["cpu", "mmap"])
def test_streamed_gguf_equals_dequantised_weights(files, weight_type, storage):
    model, path, dequantised = files(weight_type)
    inputs = tiny_inputs(model)
    reference = _run(load_dit(dequantised), inputs)
    dit = load_streamed_dit(path, BlockStreaming(blocks_on_device=1, storage=storage), device="cpu")
    streamer = streamer_of(dit)
    assert streamer.plan.streamed == 1
    # What streams is the quantised bytes: the block's packed size is its blocks', not float weights'.
    fp32_bytes = sum(p.numel() * 4 for p in load_dit(dequantised).blocks[1].parameters())
    assert streamer.plan.block_bytes[1] < fp32_bytes / 3
    assert relative_error(_run(dit, inputs), reference) <= TOLERANCE
    assert streamer.copies_in == 1


def _loras(model):
    def lora(seed):
        patches = random_patches(model, block_modules(model) + list(GLOBAL_LINEARS), seed=seed)
        return lora_from_tensors(comfy_lora(patches), f"tiny_lora_{seed}.safetensors")

    return [(lora(1), 0.8), (lora(2), -0.5)]


@pytest.mark.parametrize("streamed", [False, True])
def test_lora_on_gguf_equals_lora_on_dequantised(files, streamed):
    model, path, dequantised = files("Q4_K")
    inputs = tiny_inputs(model)
    loras = _loras(model)
    reference_base = load_dit(dequantised)
    reference = _run(apply_loras(reference_base, loras, mode="on_the_fly"), inputs)
    assert not torch.equal(reference, _run(reference_base, inputs))
    base = load_streamed_dit(path, BlockStreaming(blocks_on_device=1, storage="mmap"), device="cpu") if streamed \
        else load_dit(path)
    patched = apply_loras(base, loras)  # auto: on the fly, the quantised blocks untouched
    assert relative_error(_run(patched, inputs), reference) <= TOLERANCE
    wrapped = {name.removesuffix(".base"): quant for name, quant in _quantised_linears(patched).items()}
    assert wrapped == _quantised_linears(base)
    if not streamed:  # (streamed copies install their own device buffers)
        assert patched.blocks[0].ffn[0].base.weight is base.blocks[0].ffn[0].weight  # the same blocks, shared
    with pytest.raises(ValueError, match="GGUF file.*'on_the_fly'"):
        apply_loras(base, loras, mode="merge")


def _other_gguf(path, arch, names):
    writer = gguf.GGUFWriter(path=None, arch=arch)
    writer.add_name(f"tiny {arch}")
    for name in names:
        writer.add_tensor(name, np.ones((4, 32), dtype=np.float32))
    save(writer, path)
    return path


@pytest.mark.parametrize("arch, names, says", [
    ("llama", ["token_embd.weight", "blk.0.attn_q.weight"], r"language model .*general.architecture = 'llama'"),
    ("flux", ["double_blocks.0.img_attn.proj.weight"], r"a Flux image model .*'flux'"),
])
def test_other_architecture_is_refused(tmp_path, arch, names, says):
    path = _other_gguf(tmp_path / f"{arch}.gguf", arch, names)
    with pytest.raises(CheckpointError, match=says) as caught:
        load_dit(path)
    assert f"tiny {arch}" in str(caught.value) and "not a Wan DiT" in str(caught.value)


def test_fp8_matmuls_are_refused_for_gguf(files):
    _, path, _ = files("Q8_0")
    dit = load_dit(path)
    from kinema.core.dit.loader import _use_fp8_matmul

    with pytest.raises(ValueError, match="GGUF weights are dequantised layer by layer"):
        _use_fp8_matmul(dit, torch.device("cpu"))



def test_weight_dtype_sets_the_compute_precision(files, tmp_path):
    """dtype=bf16 on a GGUF: the blocks stay quantised and each call dequantises them into the input's
    dtype (bf16, or float32 in the time embedding and head); the other tensors are kept in bf16. The
    reference stores the dequantised quantised weights in float32 and the rest in bf16, computing in bf16."""
    from safetensors.torch import load_file

    model, path, dequantised = files("Q4_K")
    dit = load_dit(path, dtype=torch.bfloat16)
    assert dit.compute_dtype == torch.bfloat16 and dit.blocks[0].ffn[0].weight.dtype == torch.uint8
    quantised = {f"{name}.weight" for name in _quantised_linears(dit)}
    mixed = {k: v if k in quantised else v.to(torch.bfloat16) for k, v in load_file(str(dequantised)).items()}
    save_file(mixed, str(tmp_path / "mixed.safetensors"))
    inputs = tiny_inputs(model)
    reference = _run(load_dit(tmp_path / "mixed.safetensors", compute_dtype=torch.bfloat16), inputs)
    assert relative_error(_run(dit, inputs), reference) <= TOLERANCE
