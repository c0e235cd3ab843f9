"""`F.linear`, run through oneDNN's inner product for float32 on the CPU.

torch's CPU float32 `F.linear` calls a BLAS sgemm; oneDNN's inner product (the kernel torch's
inductor and Intel's extension use for CPU linears) computes the same products faster with no
weight-sized temporary. Measured on 2 threads of an AMD EPYC (AVX-512), Wan shapes, [out, in] at
L tokens: [8960, 1536] at 1,280 tokens 178 ms against 195 ms, [1536, 1536] 28 against 32, [13824,
5120] at 16 tokens 20 against 47 ms. Only the summation order differs: max error against float64
~1.3e-6 of the output's largest value (sgemm's ~3.5e-7), both float32 rounding.

It runs for float32 input and weight on the CPU, for weights of at least `ONEDNN_MIN_WEIGHT`
elements, where torch was built with oneDNN and it is not switched off
(`torch.backends.mkldnn.enabled = False`); everything else is plain `F.linear`. The choice depends
on the layer only, never on the token count, so a layer's rows come out the same however the
tokens are split (sequence parallel ranks, batches).

Results must not depend on the grad mode (the DiT's forward is grad-neutral, and text keys
prepared outside `inference_mode` must equal those a forward computes inside it) nor on
compiling, so it is one custom op, `kinema::onednn_linear`, with the linear's backward, which
autograd records and `torch.compile` keeps as an opaque call. `linear_gelu` is the same with the
GELU in the matmul's epilogue (`kinema::onednn_linear_gelu`): the FFN's up projection.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


# Smaller layers (the demo model's 128-wide ones, Wan's head) call oneDNN for too little work to
# win: [128, 128] at 240 tokens took 1.2x sgemm's time, [512, 512] 0.93-0.96x, [1024, 1024] 0.72-0.91x.
ONEDNN_MIN_WEIGHT = 1 << 18


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)`: x [..., in], weight [out, in], bias [out] -> [..., out]."""
    if _onednn_runs(x, weight, bias):
        return onednn_linear(x, weight, bias)
    return F.linear(x, weight, bias)


def linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], approximate: str) -> torch.Tensor:
    """`F.gelu(F.linear(x, weight, bias), approximate=approximate)`: x [..., in] -> [..., out]. On
    oneDNN's path the GELU is fused into the matmul; elsewhere it runs in place on the fresh output
    unless autograd records the call."""
    if _onednn_runs(x, weight, bias):
        return onednn_linear_gelu(x, weight, bias, approximate)
    return gelu_of_fresh(F.linear(x, weight, bias), approximate)


def gelu_of_fresh(t: torch.Tensor, approximate: str) -> torch.Tensor:
    """`F.gelu(t, approximate=approximate)` of a tensor nothing else holds: in place unless autograd
    records the call (allocating a second buffer this size costs as much as the GELU itself)."""
    if torch.is_grad_enabled():
        return F.gelu(t, approximate=approximate)
    return torch.ops.aten.gelu_(t, approximate=approximate)


def _onednn_runs(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    return (
        x.dtype == torch.float32
        and weight.dtype == torch.float32
        and (bias is None or bias.dtype == torch.float32)
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and weight.dim() == 2
        and weight.numel() >= ONEDNN_MIN_WEIGHT
        and x.shape[-1] == weight.shape[1]  # else F.linear names the mismatch
        and (bias is None or bias.shape == weight.shape[:1])
        and x.numel() > 0
        and torch.backends.mkldnn.enabled
        and _ONEDNN_AVAILABLE
    )


@torch.library.custom_op("kinema::onednn_linear", mutates_args=())
def onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@torch.library.custom_op("kinema::onednn_linear_gelu", mutates_args=())
def onednn_linear_gelu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                       approximate: str) -> torch.Tensor:
    # The GELU runs in the matmul's epilogue (oneDNN's eltwise post-op) on each output tile while it
    # is in cache: no second pass over the [..., out] output (Wan 1.3B's FFN at 1,280 tokens: 8 ms of 360).
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], approximate)


@onednn_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


@onednn_linear_gelu.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], approximate: str) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, *rest = inputs
    ctx.save_for_backward(x, weight, bias)
    ctx.approximate = rest[0] if rest else None  # the GELU's, for onednn_linear_gelu


def _linear_grads(ctx, grad: torch.Tensor):  # grad [..., out] of the linear's output
    x, weight, _ = ctx.saved_tensors
    needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
    rows = grad.reshape(-1, grad.shape[-1])  # [N, out]
    grad_x = grad @ weight if needs_x else None  # [..., in]
    grad_weight = rows.T @ x.reshape(-1, x.shape[-1]) if needs_weight else None  # [out, in]
    grad_bias = rows.sum(0) if needs_bias else None  # [out]
    return grad_x, grad_weight, grad_bias


def _gelu_backward(ctx, grad: torch.Tensor):
    # The pre-activation is recomputed rather than kept: only training runs this, and keeping it
    # would hold a second [..., out] tensor per layer for every call made with autograd on.
    x, weight, bias = ctx.saved_tensors
    before = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")  # [..., out]
    grad = torch.ops.aten.gelu_backward(grad, before, approximate=ctx.approximate)
    return (*_linear_grads(ctx, grad), None)


onednn_linear.register_autograd(_linear_grads, setup_context=_setup_context)
onednn_linear_gelu.register_autograd(_gelu_backward, setup_context=_setup_context)


def _onednn_linear_available() -> bool:
    """Whether this torch build has the op and it runs, with and without the fused GELUs (checked
    once against `F.linear` and `F.gelu`)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(shape, generator=generator) for shape in ((3, 5), (4, 5), (4,)))
    expected = F.linear(x, weight, bias)
    cases = [("none", "", expected)] + [("gelu", how, F.gelu(expected, approximate=how)) for how in ("none", "tanh")]
    try:
        with torch.inference_mode():
            outs = [(torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], how), want) for attr, how, want in cases]
    except RuntimeError:  # e.g. a build whose oneDNN lacks the primitive for this CPU
        return False
    return all(torch.allclose(out, want, rtol=1e-5, atol=1e-5) for out, want in outs)


_ONEDNN_AVAILABLE = _onednn_linear_available()  # at import: compiled code reads it as a constant
