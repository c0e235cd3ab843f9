"""`F.linear`, run through oneDNN's inner product for float32 on the CPU.

torch's CPU float32 `F.linear` calls a BLAS sgemm; oneDNN's inner product (the kernel torch's
inductor and Intel's extension use for CPU linears) computes the same products faster with no
weight-sized temporary. Measured on 2 threads of an AMD EPYC (AVX-512), Wan shapes, [out, in] at
L tokens: [8960, 1536] at 1,280 tokens 178 ms against 195 ms, [1536, 1536] 28 against 32, [13824,
5120] at 16 tokens 20 against 47 ms. Only the summation order differs: max error against float64
~1.3e-6 of the output's largest value (sgemm's ~3.5e-7), both float32 rounding.

Used for float32 input and weight on the CPU, with or without autograd: the op has no backward,
so `_OneDnnLinear` supplies the linear's usual one. Results must not depend on the grad mode (the
DiT's forward is grad-neutral, and text keys prepared outside `inference_mode` must equal those a
forward computes inside it), so both modes take the same kernel. Not while compiling (inductor
picks its own kernels), and only where torch was built with oneDNN and it is not switched off
(`torch.backends.mkldnn.enabled = False`). Everything else, and any torch build without the op, is
plain `F.linear`.
"""
from __future__ import annotations

import functools
from typing import Optional

import torch
import torch.nn.functional as F


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)`: x [..., in], weight [out, in], bias [out] -> [..., out]."""
    if not _onednn_runs(x, weight, bias):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias)):
        return _OneDnnLinear.apply(x, weight, bias)
    return _onednn_linear(x, weight, bias)


def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


class _OneDnnLinear(torch.autograd.Function):
    """The oneDNN forward with the linear's backward (x [..., in], weight [out, in], bias [out])."""

    @staticmethod
    def forward(x, weight, bias):
        return _onednn_linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, _ = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    def backward(ctx, grad):  # grad [..., out]
        x, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad
        rows = grad.reshape(-1, grad.shape[-1])  # [N, out]
        grad_x = grad @ weight if needs_x else None  # [..., in]
        grad_weight = rows.T @ x.reshape(-1, x.shape[-1]) if needs_weight else None  # [out, in]
        grad_bias = rows.sum(0) if needs_bias else None  # [out]
        return grad_x, grad_weight, grad_bias


def _onednn_runs(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    return (
        x.dtype == torch.float32
        and weight.dtype == torch.float32
        and (bias is None or bias.dtype == torch.float32)
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and weight.dim() == 2
        and x.numel() > 0
        and not torch.compiler.is_compiling()
        and torch.backends.mkldnn.enabled
        and _onednn_linear_available()
    )


@functools.cache
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
