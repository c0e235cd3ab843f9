"""Layers whose stored weights may be in a lower precision than they compute in.

Weights stay as loaded (fp32, bf16, fp16, fp8, or fp8 with a per-tensor scale) and are upcast
to the input's dtype one layer at a time, so a 14B fp8 model costs fp8 memory.
"""
from __future__ import annotations

import math
import threading
from typing import Optional, Union

import torch
import torch.nn as nn

from ..kernels.linear import linear, linear_gelu
from .checkpoints.gguf_dequant import QuantFormat, QuantisedTensor

_E4M3_MAX = torch.finfo(torch.float8_e4m3fn).max  # 448, e4m3's largest finite value
# fp8 -> fp16 by moving bits: (left shift of the sign-extended int16, bits to clear, value factor).
# e4m3fn's 4-bit exponent lands in the low 4 bits of fp16's 5-bit one, so each code becomes
# exactly its value / 256 (subnormals included; the two NaN codes become +-480, and weights hold
# no NaN); e5m2 is the top byte of fp16. On CPU this is ~3x faster than torch's per-element
# fp8 conversion, which was the largest cost of an fp8 layer at low token counts.
_FP16_BITS = {torch.float8_e4m3fn: (7, ~0x4000, 256.0), torch.float8_e5m2: (8, 0, 1.0)}
# Inputs the fp8 matmul takes: 16-bit activations. float32 inputs are the model's fp32 islands
# (time embedding, head), which stay exact on the upcast path.
_FP8_MATMUL_INPUTS = (torch.bfloat16, torch.float16)


class Linear(nn.Linear):
    """nn.Linear that computes in the input's dtype whatever the weight's storage dtype.

    A scaled-fp8 checkpoint's `<prefix>weight_scale` (float32 scalar) is taken while loading the
    state dict. It multiplies the input, x W^T s = (x s) W^T, so the upcast weight is used as is
    and `W * s` (a second pass over the weight and a weight-sized temporary) never exists. In
    bf16 that is also the most exact placement: scaling the output adds roundings after the
    matmul's (measured 4-6e-3 against 2-3e-3 relative to float64, about the old `W * s`'s). `fp8_matmul` (set by the loader for `fp8_e4m3fn_fast`)
    runs e4m3fn weights through `torch._scaled_mm` on CUDA, the input quantised per tensor.

    GGUF-quantised weights (`quant` set): `weight` holds the file's blocks as uint8 bytes (so moving,
    streaming and sharing the layer move the quantised bytes) and each call dequantises them, on the
    weight's device, into the input's dtype.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.register_buffer("weight_scale", None)
        self.fp8_matmul = False
        self.quant: Optional[QuantFormat] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., in] -> [..., out]
        if self.quant is not None:
            shape, reuse = (self.out_features, self.in_features), _reuses_workspace(self.weight)
            buffer = _WORKSPACE.take(shape, torch.float32) if reuse else None
            weight = _converted(self.quant.dequantize(self.weight, shape, out=buffer), x.dtype, reuse)  # [out, in]
            return linear(x, weight, None if self.bias is None else cast_like(self.bias, x))
        if self.fp8_matmul and x.is_cuda and x.dtype in _FP8_MATMUL_INPUTS and self.weight.dtype == torch.float8_e4m3fn:
            return _scaled_mm_linear(x, self.weight, self.weight_scale, self.bias)
        bias = None if self.bias is None else cast_like(self.bias, x)
        rows = _rows_per_conversion(self.weight, x.dtype)
        if rows is None:
            weight, factor = upcast(self.weight, x.dtype)
            return linear(self._scaled(x, factor), weight, bias)
        # Converted a slice of output rows at a time, so the reused CPU buffers stay slice-sized
        # instead of growing to the largest layer (14B's [30720, 5120] time projection in fp32: 0.6 GB
        # held for the process's life). Same products as unsliced; only the matmul kernel's summation
        # order may differ (measured: fp32 at one token within 1e-7 relative, else bit-identical).
        out = x.new_empty(*x.shape[:-1], self.out_features)  # [..., out]
        scaled = None
        for start in range(0, self.out_features, rows):
            part = slice(start, start + rows)
            weight, factor = upcast(self.weight[part], x.dtype)  # [rows, in], valid until the next upcast
            scaled = self._scaled(x, factor) if scaled is None else scaled
            out[..., part] = linear(scaled, weight, None if bias is None else bias[part])
        return out

    def _scaled(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """The input times the weight's scale and upcast factor (see the class notes)."""
        scale = factor if self.weight_scale is None else self.weight_scale * factor  # float or 0-dim fp32
        return x if isinstance(scale, float) and scale == 1.0 else x * scale

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", quant={self.quant.name}" if self.quant is not None else "")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        quantised = state_dict.get(prefix + "weight")
        if isinstance(quantised, QuantisedTensor):
            self._adopt_blocks(quantised, prefix, state_dict)
        key = prefix + "weight_scale"
        if key in state_dict:
            # Register the buffer, then let the default loader fill it, so strict loads count the key as used.
            scale = state_dict[key].float().reshape(())
            self._buffers["weight_scale"] = scale
            state_dict[key] = scale
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _adopt_blocks(self, quantised: QuantisedTensor, prefix: str, state_dict) -> None:
        """Make `weight` a uint8 parameter of the blocks' size, so the default loader takes the blocks."""
        if tuple(quantised.shape) != (self.out_features, self.in_features):
            raise RuntimeError(f"{prefix}weight: quantised tensor of shape {tuple(quantised.shape)}, layer "
                               f"[{self.out_features} x {self.in_features}]")
        self.quant = quantised.format
        placeholder = torch.empty(quantised.blocks.shape, dtype=torch.uint8, device=self.weight.device)
        self._parameters["weight"] = nn.Parameter(placeholder, requires_grad=False)
        state_dict[prefix + "weight"] = quantised.blocks


def upcast(weight: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, float]:
    """`(w, factor)` with `w * factor` = the stored weight's values, `w` in `dtype`; factor is 1
    except for e4m3fn weights on CPU, which go through fp16 bits (see `_FP16_BITS`). Without
    autograd, CPU results live in reused workspace buffers: valid until the next upcast."""
    if weight.dtype == dtype:
        return weight, 1.0
    on_cpu = weight.device.type == "cpu"
    reuse = _reuses_workspace(weight)
    bits = _FP16_BITS.get(weight.dtype) if on_cpu else None
    if bits is None:
        return _converted(weight, dtype, reuse), 1.0
    shift, clear, factor = bits
    half = _converted(weight.view(torch.int8), torch.int16, reuse)  # sign-extended
    half.bitwise_left_shift_(shift)  # the sign bit lands on fp16's
    if clear:
        half.bitwise_and_(clear)  # the sign extension's copy inside the exponent
    return _converted(half.view(torch.float16), dtype, reuse), factor


# Weights with more elements than this are converted in slices of output rows on the CPU (32 MB
# of float32 per slice): large enough that each slice's matmul runs at full speed.
_CONVERSION_ELEMENTS = 1 << 23
# Slices hold a multiple of this many rows, split evenly. The matmul kernels run odd row counts
# far slower: Wan 1.3B's FFN [8960, 1536] at 1,280 tokens in fp32 took 252 ms as 5,461 + 3,499
# rows (the most that fit) and 176 ms as 2 x 4,480 (190 ms unsliced).
_ROW_ALIGNMENT = 64


def _converts_in_slices(weight: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether `weight` must be converted to `dtype` and is too large to convert whole."""
    return weight.dtype != dtype and weight.dim() == 2 and weight.numel() > _CONVERSION_ELEMENTS


def _rows_per_conversion(weight: torch.Tensor, dtype: torch.dtype) -> Optional[int]:
    """Output rows per converted slice of `weight`, or None to convert it whole."""
    if not _converts_in_slices(weight, dtype) or not _reuses_workspace(weight):
        return None
    return _slice_rows(*weight.shape)


def _slice_rows(out_rows: int, in_features: int) -> int:
    """Rows per slice of an [out_rows, in_features] weight: even slices of at most _CONVERSION_ELEMENTS."""
    most = max(1, _CONVERSION_ELEMENTS // in_features)
    if most < _ROW_ALIGNMENT:  # rows this long: take what fits
        return most
    most -= most % _ROW_ALIGNMENT
    slices = -(-out_rows // most)
    even = -(-out_rows // slices)  # <= most, so rounding up to the alignment stays <= most
    return -(-even // _ROW_ALIGNMENT) * _ROW_ALIGNMENT


def _reuses_workspace(weight: torch.Tensor) -> bool:
    """Whether a conversion of `weight` goes into `_WORKSPACE`: on the CPU, without autograd or compiling."""
    return weight.device.type == "cpu" and not torch.is_grad_enabled() and not torch.compiler.is_compiling()


def _converted(t: torch.Tensor, dtype: torch.dtype, reuse: bool) -> torch.Tensor:
    if t.dtype == dtype:
        return t
    return _WORKSPACE.take(t.shape, dtype).copy_(t) if reuse else t.to(dtype)


class _Workspace(threading.local):
    """CPU conversion buffers, one per dtype and thread, grown to the largest conversion (a whole
    layer, or a slice of rows of a large one: `_CONVERSION_ELEMENTS`) and reused.

    glibc maps every large block afresh and unmaps it when freed, so a new weight-sized tensor
    costs a zero-filled page fault per 4 KiB on every call: measured 5-10x the conversion itself
    (fp16 -> fp32 of a [13824, 5120] weight: 225 ms fresh, 25 ms into a reused buffer). The CUDA
    caching allocator already reuses blocks, so GPUs do not need this.
    """

    def __init__(self):
        self.buffers: dict[torch.dtype, torch.Tensor] = {}

    def take(self, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
        numel = math.prod(shape)
        buffer = self.buffers.get(dtype)
        if buffer is None or buffer.numel() < numel:
            # A normal tensor, even when first taken under inference_mode: an inference tensor
            # could not be written in place by a later call outside it.
            with torch.inference_mode(False):
                buffer = self.buffers[dtype] = torch.empty(numel, dtype=dtype)
        return buffer[:numel].view(shape)


_WORKSPACE = _Workspace()


def cast_like(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`t` in `x`'s dtype (no copy when already equal)."""
    return t if t.dtype == x.dtype else t.to(x.dtype)


# --- feed-forward in chunks of hidden units ----------------------------------------------------

def feed_forward_chunk(up: nn.Module, down: nn.Module, x: torch.Tensor) -> Optional[int]:
    """Hidden units per chunk for `chunked_feed_forward(up, down, x, ...)`, or None to run the two
    layers as modules.

    Plain `Linear`s on the CPU only (no GGUF blocks, no LoRA wrapper, no hooks, not compiling): there the
    GELU runs inside the up projection's matmul (`kernels.linear.linear_gelu`), in one chunk, or in
    several where both weights are converted and large (bf16 or fp8 files computing in fp32): each
    chunk converts a slice of `up`'s rows and the matching slice of `down`'s columns into the reused
    buffers, and the [.., hidden] activation is never assembled from sliced outputs (Wan 1.3B's FFN at
    1,280 tokens: 365 ms against 380). Chosen from the types, shapes and dtypes alone, the same with
    and without autograd."""
    layers = (up, down)
    if any(type(layer) is not Linear or layer.quant is not None or layer._forward_hooks or layer._forward_pre_hooks
           for layer in layers):
        return None
    if x.device.type != "cpu" or any(layer.weight.device.type != "cpu" for layer in layers):
        return None
    if torch.compiler.is_compiling():
        return None
    if _converts_in_slices(up.weight, x.dtype) and down.weight.dtype != x.dtype:
        return _slice_rows(*up.weight.shape)
    return up.out_features


def chunked_feed_forward(up: Linear, down: Linear, x: torch.Tensor, approximate: str, chunk: int) -> torch.Tensor:
    """`down(gelu(up(x)))` with `F.gelu(..., approximate=approximate)`, `chunk` hidden units at a
    time: x [..., in] -> [..., out]. The down projection sums its chunks' products in chunk order
    (fp32 rounding apart, the unchunked sum)."""
    out = scaled = None
    for start in range(0, up.out_features, chunk):
        part = slice(start, start + chunk)
        weight, factor = upcast(up.weight[part], x.dtype)  # [chunk, in], valid until the next upcast
        scaled = up._scaled(x, factor) if scaled is None else scaled  # the factor is the dtype's: one per layer
        bias = None if up.bias is None else cast_like(up.bias[part], x)
        hidden = linear_gelu(scaled, weight, bias, approximate)  # [..., chunk]
        weight, factor = upcast(down.weight[:, part], x.dtype)  # [out, chunk]
        bias = None if (down.bias is None or out is not None) else cast_like(down.bias, x)
        product = linear(down._scaled(hidden, factor), weight, bias)  # [..., out]
        out = product if out is None else (out.add_(product) if not torch.is_grad_enabled() else out + product)
    return out


# --- fp8 matmul (torch._scaled_mm) -----------------------------------------------------------

def fp8_matmul_unsupported(device: Union[str, torch.device]) -> Optional[str]:
    """Why `device` cannot run the fp8 matmul, or None when it can (CUDA, compute capability >= 8.9)."""
    device = torch.device(device)
    if device.type != "cuda" or not torch.cuda.is_available():
        return f"the device is {device}, and fp8 matmuls run only on NVIDIA GPUs"
    if torch.version.hip is not None:
        return "ROCm GPUs use other fp8 formats (fnuz) than the e4m3fn weights of these files"
    if not hasattr(torch, "_scaled_mm"):
        return f"torch {torch.__version__} has no torch._scaled_mm; update torch"
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 9):
        name = torch.cuda.get_device_name(device)
        return f"{name} has compute capability {capability[0]}.{capability[1]}; fp8 matmuls need 8.9 or newer"
    return None


def fp8_matmul_fits(linear: Linear) -> bool:
    """torch._scaled_mm needs both weight dimensions to be multiples of 16 (every Wan block's are)."""
    return linear.in_features % 16 == 0 and linear.out_features % 16 == 0


def _scaled_mm_linear(
    x: torch.Tensor, weight: torch.Tensor, weight_scale: Optional[torch.Tensor], bias: Optional[torch.Tensor]
) -> torch.Tensor:  # [..., in] -> [..., out]
    rows = x.reshape(-1, x.shape[-1])  # [M, in]
    # Per-tensor input scale: the largest |x| maps to e4m3's largest value.
    x_scale = (rows.abs().amax().float() / _E4M3_MAX).clamp_min(torch.finfo(torch.float32).tiny)  # 0-dim
    codes = (rows / x_scale).clamp_(-_E4M3_MAX, _E4M3_MAX).to(torch.float8_e4m3fn)  # [M, in]
    w_scale = weight_scale.float() if weight_scale is not None else torch.ones((), device=x.device)
    # cuBLAS takes a bias only with a 16-bit output (always the case here: see _FP8_MATMUL_INPUTS).
    out = torch._scaled_mm(codes, weight.t(), scale_a=x_scale, scale_b=w_scale,
                           bias=None if bias is None else bias.to(x.dtype), out_dtype=x.dtype)
    if isinstance(out, tuple):  # torch < 2.5 also returned the output's amax
        out = out[0]
    return out.reshape(*x.shape[:-1], weight.shape[0])
