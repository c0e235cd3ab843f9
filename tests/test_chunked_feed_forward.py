"""core.layers' feed-forward in chunks of hidden units (CPU, converted bf16 / fp8-scaled weights):
equal to the two whole layers and to a float64 dequantised reference within float32 rounding, the
same bits with and without autograd, and not taken where a chunk would skip something (LoRA
wrappers, hooks, weights already in the compute dtype)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import kinema.core.layers as layers
from kinema.core.checkpoints.quant import quantize_fp8
from kinema.core.layers import Linear, chunked_feed_forward, feed_forward_chunk

FP32_BOUND = 5e-6  # max |out - float64 reference| / max |reference|, float32 rounding of two sums


def _relative(out: torch.Tensor, reference: torch.Tensor) -> float:
    return ((out.double() - reference).abs().max() / reference.abs().max()).item()


def _layer(in_features: int, out_features: int, storage: str, seed: int) -> Linear:
    generator = torch.Generator().manual_seed(seed)
    layer = Linear(in_features, out_features)
    weight = torch.randn(out_features, in_features, generator=generator) / in_features**0.5
    bias = torch.randn(out_features, generator=generator)
    if storage == "fp8_scaled":
        codes, layer.weight_scale = quantize_fp8(weight)
        layer.weight = nn.Parameter(codes, requires_grad=False)
    else:
        layer.weight = nn.Parameter(weight.to(torch.bfloat16), requires_grad=False)
    layer.bias = nn.Parameter(bias, requires_grad=False)
    return layer


def _dequantised(layer: Linear) -> torch.Tensor:
    weight = layer.weight.double()
    return weight if layer.weight_scale is None else weight * layer.weight_scale.double()


@pytest.fixture
def small_slices(monkeypatch):
    """Slices of 64 x 96 elements, so small layers take the chunked path (and several chunks)."""
    monkeypatch.setattr(layers, "_CONVERSION_ELEMENTS", 96 * 64)
    monkeypatch.setattr(layers, "_WORKSPACE", layers._Workspace())


@pytest.mark.parametrize("storage", ["bf16", "fp8_scaled"])
def test_chunks_equal_the_whole_layers_and_the_dequantised_reference(small_slices, storage):
    up, down = _layer(96, 300, storage, seed=1), _layer(300, 80, storage, seed=2)  # 300 hidden: 64-unit chunks, the last shorter
    x = torch.randn(2, 17, 96, generator=torch.Generator().manual_seed(3))
    gelu = nn.GELU(approximate="tanh")
    chunk = feed_forward_chunk(up, down, x)
    assert chunk == 64
    with torch.inference_mode():
        chunked = chunked_feed_forward(up, down, x, "tanh", chunk)
        whole = down(gelu(up(x)))
    hidden = F.gelu(F.linear(x.double(), _dequantised(up), up.bias.double()), approximate="tanh")
    reference = F.linear(hidden, _dequantised(down), down.bias.double())
    assert chunked.shape == (2, 17, 80)
    assert _relative(chunked, reference) <= FP32_BOUND
    assert _relative(whole, reference) <= FP32_BOUND


def test_autograd_gives_the_same_bits(small_slices):
    up, down = _layer(96, 200, "bf16", seed=4), _layer(200, 96, "bf16", seed=5)
    x = torch.randn(1, 9, 96, generator=torch.Generator().manual_seed(6))
    gelu = nn.GELU(approximate="tanh")
    chunk = feed_forward_chunk(up, down, x)
    with torch.no_grad():
        expected = chunked_feed_forward(up, down, x, "tanh", chunk)
    leaf = x.clone().requires_grad_(True)
    assert feed_forward_chunk(up, down, leaf) == chunk
    out = chunked_feed_forward(up, down, leaf, "tanh", chunk)
    assert out.grad_fn is not None and torch.equal(out, expected)
    out.sum().backward()
    assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


def test_no_chunks_where_they_would_change_what_runs(small_slices):
    from kinema.core.lora.apply import Adapter, LoRALinear

    x = torch.randn(1, 5, 96)
    up, down = _layer(96, 200, "bf16", seed=7), _layer(200, 96, "bf16", seed=8)
    assert feed_forward_chunk(up, down, x) is not None
    assert feed_forward_chunk(up, down, x.double()) is not None  # any compute dtype the weights convert to
    adapter = Adapter(down=torch.zeros(2, 200), up=torch.zeros(96, 2))
    assert feed_forward_chunk(up, LoRALinear(down, (adapter,)), x) is None  # the wrapper adds its delta
    handle = up.register_forward_hook(lambda *args: None)
    assert feed_forward_chunk(up, down, x) is None
    handle.remove()
    same_dtype = Linear(96, 200), Linear(200, 96)  # float32 weights: nothing to convert, one chunk
    assert feed_forward_chunk(*same_dtype, x) == 200


def test_float32_weights_run_one_chunk_with_the_gelu_fused():
    """Weights already in the compute dtype: one chunk (nothing to convert), the GELU inside the up
    projection's oneDNN matmul, within float32 rounding of the float64 reference."""
    generator = torch.Generator().manual_seed(9)
    up, down = Linear(512, 640), Linear(640, 512)  # >= 2^18 weight elements: oneDNN's path
    for layer in (up, down):
        nn.init.normal_(layer.weight, std=layer.in_features**-0.5, generator=generator)
    x = torch.randn(1, 40, 512, generator=generator)
    assert feed_forward_chunk(up, down, x) == 640
    with torch.inference_mode():
        out = chunked_feed_forward(up, down, x, "tanh", 640)
    hidden = F.gelu(F.linear(x.double(), up.weight.double(), up.bias.double()), approximate="tanh")
    assert _relative(out, F.linear(hidden, down.weight.double(), down.bias.double())) <= FP32_BOUND
