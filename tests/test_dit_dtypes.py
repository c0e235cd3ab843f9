"""Low-precision DiT files: bf16 and ComfyUI fp8 (scaled, both scale spellings) stay low precision in
memory, compute exactly what their rounded weights say, and stay close to the fp32 model."""
from __future__ import annotations

import copy
import functools

import pytest
import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from safetensors.torch import load_file

from kinema.core.dit import load_dit
from kinema.core.layers import fp8_matmul_unsupported

from tiny_dit import COMFY_PREFIX, make_tiny_diffusers_dit, reference_forward, save_tiny_dit, tiny_inputs, relative_error

EXACT_TOL = 1e-4  # fp32 compute on identical (rounded) weights: see test_dit_parity.py
# Distance to the fp32 model is the weights' rounding error carried through the network.
# Measured max |out - fp32| / max |fp32| over t2v / i2v_clip / ti2v x 3 seeds (2 cores, torch 2.13):
#   bf16 file 2.2e-3 .. 3.7e-3 (8-bit mantissa: per-weight rounding <= 2^-9 = 2e-3)
#   fp8 scaled 2.3e-2 .. 4.1e-2 (e4m3: 3-bit mantissa, per-weight rounding <= 2^-4 = 6%)
#   bf16 compute on fp32 weights 2.6e-3 .. 4.2e-3
# Bounds are ~2-2.5x the worst measurement: loose enough for other seeds/BLAS, tight enough that a
# missing scale (x ~100 for these weights) or a weight left in fp8 codes fails by orders of magnitude.
BF16_FILE_BOUND = 1e-2
FP8_SCALED_BOUND = 8e-2
BF16_COMPUTE_BOUND = 1e-2


@functools.lru_cache(maxsize=None)
def _case():
    model = make_tiny_diffusers_dit("i2v_clip")
    inputs = tiny_inputs(model, batch=2)
    return model, inputs, reference_forward(model, inputs)


def _run(dit, inputs):
    return dit(inputs["x"], inputs["t"], inputs["context"], y=inputs["y"], clip_fea=inputs["clip_fea"])




def _reference_with_file_weights(model, path, round_to=None):
    """diffusers with the weights the FILE holds (fp8 x scale, done here by hand) instead of the fp32 ones."""
    raw = {k.removeprefix(COMFY_PREFIX): v for k, v in load_file(str(path)).items()}
    weights = {}
    for key, value in raw.items():
        if key == "scaled_fp8" or key.endswith((".scale_weight", ".weight_scale")):
            continue
        scale = raw.get(key.removesuffix("weight") + "scale_weight", raw.get(key.removesuffix("weight") + "weight_scale"))
        value = value.float() * scale if key.endswith(".weight") and scale is not None else value.float()
        weights[key] = value.to(round_to).float() if round_to is not None else value
    reference = copy.deepcopy(model)
    reference.load_state_dict(convert_wan_transformer_to_diffusers(weights), strict=True)
    return reference


def test_bf16_file_stays_bf16_and_is_exact_on_its_weights(tmp_path):
    model, inputs, ref32 = _case()
    path = save_tiny_dit(tmp_path, "comfy", "i2v_clip", torch.bfloat16, model=model)
    dit = load_dit(path)
    assert dit.blocks[0].self_attn.q.weight.dtype == torch.bfloat16
    assert dit.patch_embedding.weight.dtype == torch.bfloat16
    out = _run(dit, inputs)
    assert relative_error(out, reference_forward(_reference_with_file_weights(model, path), inputs)) <= EXACT_TOL
    assert relative_error(out, ref32) <= BF16_FILE_BOUND


@pytest.mark.parametrize("scale_key", ["scale_weight", "weight_scale"])
def test_fp8_scaled_file_stays_fp8_and_is_exact_on_its_weights(tmp_path, scale_key):
    model, inputs, ref32 = _case()
    path = save_tiny_dit(tmp_path, "comfy_prefixed", "i2v_clip", "fp8_scaled", model=model, scale_key=scale_key)
    dit = load_dit(path)
    q = dit.blocks[0].self_attn.q
    assert q.weight.dtype == torch.float8_e4m3fn and q.weight_scale is not None
    out = _run(dit, inputs)
    assert relative_error(out, reference_forward(_reference_with_file_weights(model, path), inputs)) <= EXACT_TOL
    assert relative_error(out, ref32) <= FP8_SCALED_BOUND


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fp8_scaled_file_with_a_weight_dtype_stays_fp8_and_runs_in_it(tmp_path, dtype):
    """A weight dtype for an fp8 file converts each layer as it runs: no full-precision copy of the
    weights is made (they stay fp8 with their scales); the chosen dtype is the compute dtype."""
    model, inputs, ref32 = _case()
    path = save_tiny_dit(tmp_path, "comfy_prefixed", "i2v_clip", "fp8_scaled", model=model)
    dit = load_dit(path, dtype=dtype)
    q = dit.blocks[0].self_attn.q
    assert q.weight.dtype == torch.float8_e4m3fn and q.weight_scale is not None
    assert dit.compute_dtype == dtype
    assert dit.patch_embedding.weight.dtype == dtype  # tensors that are not fp8 take the dtype
    out = _run(dit, inputs)
    error = relative_error(out, reference_forward(_reference_with_file_weights(model, path), inputs))
    assert error <= (EXACT_TOL if dtype == torch.float32 else BF16_COMPUTE_BOUND)
    assert relative_error(out, ref32) <= FP8_SCALED_BOUND


def test_plain_fp8_file_loads(tmp_path):
    model, inputs, _ = _case()
    path = save_tiny_dit(tmp_path, "comfy", "i2v_clip", "fp8_e4m3fn", model=model)
    dit = load_dit(path)
    assert dit.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
    assert relative_error(_run(dit, inputs), reference_forward(_reference_with_file_weights(model, path), inputs)) <= EXACT_TOL


def test_bf16_compute(tmp_path):
    model, inputs, ref32 = _case()
    dit = load_dit(save_tiny_dit(tmp_path, "comfy", "i2v_clip", model=model), compute_dtype=torch.bfloat16)
    out = _run(dit, inputs)
    assert out.dtype == torch.float32
    assert relative_error(out, ref32) <= BF16_COMPUTE_BOUND


def test_cast_on_load(tmp_path):
    model, _, _ = _case()
    dit = load_dit(save_tiny_dit(tmp_path, "official", "i2v_clip", model=model), dtype=torch.float16)
    assert {p.dtype for p in dit.parameters()} == {torch.float16}
    with pytest.raises(ValueError, match="dtype must be None"):
        load_dit(tmp_path / "diffusion_pytorch_model.safetensors", dtype=torch.float8_e4m3fn)


def test_fp8_matmul_refused_on_cpu(tmp_path):
    path = save_tiny_dit(tmp_path, "comfy", "t2v", "fp8_scaled", model=make_tiny_diffusers_dit("t2v"))
    with pytest.raises(ValueError, match="compute capability 8.9 or newer.*Choose 'default'"):
        load_dit(path, dtype="fp8_e4m3fn_fast")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or fp8_matmul_unsupported("cuda") is not None,
                    reason="needs a CUDA GPU of compute capability 8.9+")
@pytest.mark.parametrize("stored", ["fp8_scaled", torch.bfloat16])
def test_fp8_matmul_dit_on_gpu(tmp_path, stored):
    """fp8_e4m3fn_fast against the upcast path on the same GPU: fp8 files keep their weights,
    others are quantised per tensor; the activations' fp8 rounding bounds the difference."""
    model, inputs, _ = _case()
    path = save_tiny_dit(tmp_path, "comfy_prefixed", "i2v_clip", stored, model=model)
    fast = load_dit(path, dtype="fp8_e4m3fn_fast", device="cuda")
    upcast_dit = load_dit(path, device="cuda")
    assert fast.blocks[0].ffn[0].fp8_matmul and fast.blocks[0].ffn[0].weight.dtype == torch.float8_e4m3fn
    cuda_inputs = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
    # Quantised activations (3 mantissa bits) through every layer: measured on the CPU kernel
    # per layer 2-4e-2 (tests/test_fp8_linear.py); the whole tiny model stays within FP8_SCALED_BOUND.
    assert relative_error(_run(fast, cuda_inputs).cpu(), _run(upcast_dit, cuda_inputs).cpu()) <= FP8_SCALED_BOUND
