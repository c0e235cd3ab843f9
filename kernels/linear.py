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
autograd records and `torch.compile` keeps as an opaque call.
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


@onednn_linear.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return x.new_empty(*x.shape[:-1], weight.shape[0])


def _setup_context(ctx, inputs, output) -> None:
    x, weight, _ = inputs
    ctx.save_for_backward(x, weight)


def _backward(ctx, grad: torch.Tensor):  # grad [..., out]
    x, weight = ctx.saved_tensors
    needs_x, needs_weight, needs_bias = ctx.needs_input_grad
    rows = grad.reshape(-1, grad.shape[-1])  # [N, out]
    grad_x = grad @ weight if needs_x else None  # [..., in]
    grad_weight = rows.T @ x.reshape(-1, x.shape[-1]) if needs_weight else None  # [out, in]
    grad_bias = rows.sum(0) if needs_bias else None  # [out]
    return grad_x, grad_weight, grad_bias


onednn_linear.register_autograd(_backward, setup_context=_setup_context)


def _onednn_linear_available() -> bool:
    """Whether this torch build has the op and it runs (checked once against `F.linear`)."""
    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    generator = torch.Generator().manual_seed(0)
    x, weight, bias = (torch.randn(shape, generator=generator) for shape in ((3, 5), (4, 5), (4,)))
    try:
        with torch.inference_mode():
            ours = torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    except RuntimeError:  # e.g. a build whose oneDNN lacks the primitive for this CPU
        return False
    return bool(torch.allclose(ours, F.linear(x, weight, bias), rtol=1e-5, atol=1e-5))


_ONEDNN_AVAILABLE = _onednn_linear_available()  # at import: compiled code reads it as a constant
