"""kernels.linear: F.linear through oneDNN for float32 layers of ONEDNN_MIN_WEIGHT elements or more on the
CPU (eager, autograd and compiled alike), F.linear everywhere else; linear_gelu, the same with the GELU
fused into oneDNN's matmul."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from kinema.kernels.linear import _ONEDNN_AVAILABLE, ONEDNN_MIN_WEIGHT, linear, linear_gelu

# max |out - float64 reference| / max |reference|: float32 rounding of a sum over `in` products.
# Measured up to 1.4e-6 for oneDNN and 4e-7 for sgemm at in = 1536..8960; 1e-5 would still catch
# any reduced-precision (bf16 / tf32) kernel, whose errors are 1e-3 and more.
FP32_BOUND = 5e-6
ONEDNN = "mkldnn::_linear_pointwise"

onednn_only = pytest.mark.skipif(not _ONEDNN_AVAILABLE, reason="this torch build has no oneDNN linear")


def _ops(call) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as trace:
        call()
    return {event.name for event in trace.events()}


def _relative(out: torch.Tensor, reference: torch.Tensor) -> float:
    return ((out.double() - reference).abs().max() / reference.abs().max()).item()


def _inputs(tokens, features_in: int, features_out: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(*tokens, features_in, generator=generator)
    weight = torch.randn(features_out, features_in, generator=generator) / features_in**0.5
    bias = torch.randn(features_out, generator=generator)
    return x, weight, bias


@onednn_only
@pytest.mark.parametrize("tokens", [(1,), (1, 16), (2, 37), (1, 300)])
@pytest.mark.parametrize("shape", [(512, 512), (300, 1000), (1000, 300)])  # >= ONEDNN_MIN_WEIGHT
@pytest.mark.parametrize("with_bias", [True, False])
def test_float32_on_the_cpu_runs_onednn_within_float32_rounding(tokens, shape, with_bias):
    x, weight, bias = _inputs(tokens, shape[1], shape[0])
    bias = bias if with_bias else None
    with torch.inference_mode():
        assert ONEDNN in _ops(lambda: linear(x, weight, bias))
        out = linear(x, weight, bias)
    reference = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    assert out.shape == reference.shape and out.dtype == torch.float32
    assert _relative(out, reference) <= FP32_BOUND


@onednn_only
def test_strided_inputs_weights_slices_and_biases():
    """A transposed input, and a slice of a weight's rows with its bias slice, as Linear's sliced conversion takes."""
    x, weight, bias = _inputs((1,), 4096, 200)
    x = torch.randn(4096, 50).T  # [50, 4096], not contiguous
    with torch.no_grad():
        out = linear(x, weight[64:128], bias[64:128])
    assert _relative(out, F.linear(x.double(), weight[64:128].double(), bias[64:128].double())) <= FP32_BOUND


@onednn_only
def test_autograd_gives_the_no_grad_numbers_and_the_linear_gradients():
    """The forward is the same kernel with and without autograd (bit for bit: results must not depend
    on the grad mode), and the backward gives F.linear's gradients within float32 rounding."""
    x, weight, bias = _inputs((2, 9), 520, 512)
    with torch.inference_mode():
        expected = linear(x, weight, bias)
    leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    out = linear(*leaves)
    assert out.grad_fn is not None and torch.equal(out, expected)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ours = torch.autograd.grad(out, leaves, upstream)
    doubles = [t.detach().double().requires_grad_(True) for t in (x, weight, bias)]
    reference = torch.autograd.grad(F.linear(*doubles), doubles, upstream.double())
    for grad, exact in zip(ours, reference):
        assert grad.shape == exact.shape and _relative(grad, exact) <= FP32_BOUND
    only_x = x.clone().requires_grad_(True)
    (grad_x,) = torch.autograd.grad(linear(only_x, weight, None), only_x, upstream)
    assert _relative(grad_x, reference[0]) <= FP32_BOUND


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch's note when the flags change
def test_everything_else_is_plain_f_linear():
    """Small layers, other dtypes, no tokens, and oneDNN switched off take F.linear, bit for bit."""
    small = _inputs((1, 9), 48, 40)
    with torch.inference_mode():
        assert ONEDNN not in _ops(lambda: linear(*small)) and torch.equal(linear(*small), F.linear(*small))
    x, weight, bias = _inputs((1, 9), 512, 512)
    assert weight.numel() >= ONEDNN_MIN_WEIGHT
    with torch.inference_mode():
        half = (x.bfloat16(), weight.bfloat16(), bias.bfloat16())
        assert ONEDNN not in _ops(lambda: linear(*half))
        assert torch.equal(linear(*half), F.linear(*half))
        assert linear(x[:, :0], weight, bias).shape == (1, 0, 512)
        with torch.backends.mkldnn.flags(enabled=False):
            assert ONEDNN not in _ops(lambda: linear(x, weight, bias))
            assert torch.equal(linear(x, weight, bias), F.linear(x, weight, bias))


@onednn_only
def test_compiled_code_keeps_the_same_kernel():
    """Under torch.compile the op stays one opaque call, so compiled and eager linears agree bit for bit."""
    x, weight, bias = _inputs((1, 33), 512, 520)
    compiled = torch.compile(lambda a: linear(a, weight, bias) * 2.0, backend="aot_eager", fullgraph=True)
    with torch.inference_mode():
        assert torch.equal(compiled(x), linear(x, weight, bias) * 2.0)


def _gelu_reference(x, weight, bias, approximate: str) -> torch.Tensor:
    return F.gelu(F.linear(x.double(), weight.double(), None if bias is None else bias.double()), approximate=approximate)


@onednn_only
@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("tokens", [(1,), (2, 37), (1, 300)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_gelu_fuses_the_gelu_within_float32_rounding(approximate, tokens, with_bias):
    x, weight, bias = _inputs(tokens, 520, 600)
    bias = bias if with_bias else None
    with torch.inference_mode():
        assert ONEDNN in _ops(lambda: linear_gelu(x, weight, bias, approximate))
        out = linear_gelu(x, weight, bias, approximate)
    assert out.shape == (*tokens, 600) and out.dtype == torch.float32
    assert _relative(out, _gelu_reference(x, weight, bias, approximate)) <= FP32_BOUND


@onednn_only
def test_linear_gelu_autograd_gives_the_no_grad_numbers_and_the_gradients():
    x, weight, bias = _inputs((2, 9), 520, 512)
    with torch.inference_mode():
        expected = linear_gelu(x, weight, bias, "tanh")
    leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    out = linear_gelu(*leaves, "tanh")
    assert out.grad_fn is not None and torch.equal(out, expected)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    ours = torch.autograd.grad(out, leaves, upstream)
    doubles = [t.detach().double().requires_grad_(True) for t in (x, weight, bias)]
    reference = torch.autograd.grad(_gelu_reference(*doubles, "tanh"), doubles, upstream.double())
    for grad, exact in zip(ours, reference):
        assert grad.shape == exact.shape and _relative(grad, exact) <= FP32_BOUND


def test_linear_gelu_elsewhere_is_f_gelu_of_f_linear():
    """Small layers and other dtypes: F.linear then the GELU (in place without autograd), bit for bit."""
    for x, weight, bias in (_inputs((1, 9), 48, 40), tuple(t.bfloat16() for t in _inputs((1, 9), 512, 512))):
        expected = F.gelu(F.linear(x, weight, bias), approximate="tanh")
        with torch.inference_mode():
            assert ONEDNN not in _ops(lambda: linear_gelu(x, weight, bias, "tanh"))
            assert torch.equal(linear_gelu(x, weight, bias, "tanh"), expected)
        leaf = x.clone().requires_grad_(True)
        out = linear_gelu(leaf, weight, bias, "tanh")
        assert torch.equal(out, expected)
        out.sum().backward()
        assert leaf.grad is not None


@onednn_only
def test_linear_gelu_compiled_keeps_the_same_kernel():
    x, weight, bias = _inputs((1, 33), 512, 520)
    compiled = torch.compile(lambda a: linear_gelu(a, weight, bias, "tanh") * 2.0, backend="aot_eager", fullgraph=True)
    with torch.inference_mode():
        assert torch.equal(compiled(x), linear_gelu(x, weight, bias, "tanh") * 2.0)
