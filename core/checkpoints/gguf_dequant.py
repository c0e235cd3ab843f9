"""Dequantising GGUF (ggml) weight blocks in plain torch, on whatever device the bytes are on.

A quantised tensor is a run of fixed-size blocks; each block stores `block_size` values in
`type_size` bytes (codes plus fp16 scales, and minimums for the "_1" and K types). `decode` turns
uint8 blocks [n, type_size] into float32 values [n, block_size]. Every decoder does its float
arithmetic in the same order as the ggml reference (a product, then a sum, never fused), so the
values equal gguf's numpy `dequantize` exactly. The weight-sized float tensor is made once and then
scaled in place: on the CPU every fresh weight-sized tensor costs page faults (see core.layers._Workspace).

Block layouts (ggml-common.h), bytes in order:
    Q4_0  d(f16) qs[16]                  4-bit codes, value = d * (q - 8)
    Q4_1  d m qs[16]                      value = d * q + m
    Q5_0  d qh[4] qs[16]                  5th bits in qh, value = d * (q - 16)
    Q5_1  d m qh[4] qs[16]                value = d * q + m
    Q8_0  d qs[32] (int8)                 value = d * q
    Q2_K  scales[16] qs[64] d dmin        16 groups of 16, 4-bit scale and min per group
    Q3_K  hmask[32] qs[64] scales[12] d   16 groups of 16, 6-bit signed scales
    Q4_K  d dmin scales[12] qs[128]       8 groups of 32, 6-bit scale and min per group
    Q5_K  d dmin scales[12] qh[32] qs[128]
    Q6_K  ql[128] qh[64] scales[16] d     16 groups of 16, int8 scales
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

QK_K = 256  # values per K-quant super-block


@dataclass(frozen=True)
class QuantFormat:
    """One ggml block type: how many values a block holds, in how many bytes, and how to decode it."""

    name: str  # ggml's name, e.g. "Q4_K"
    ggml_type: int  # the type id GGUF files store (enum ggml_type)
    block_size: int  # values per block
    type_size: int  # bytes per block
    # uint8 [n, type_size] (+ optional float32 buffer of n * block_size values) -> float32 [n, block_size]
    decode: Callable[[torch.Tensor, Optional[torch.Tensor]], torch.Tensor]

    def nbytes(self, shape: tuple[int, ...]) -> int:
        """Bytes a tensor of `shape` takes in this format (its values are whole blocks)."""
        return math.prod(shape) // self.block_size * self.type_size

    def dequantize(self, data: torch.Tensor, shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
                   out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The tensor of `shape` (in `dtype`) that the uint8 blocks `data` (any shape, contiguous) hold.
        `out`: a contiguous float32 buffer of that many values to decode into (reused CPU workspace)."""
        blocks = data.reshape(-1, self.type_size)  # [n, type_size]
        values = self.decode(blocks, out)  # [n, block_size] float32
        values = values.reshape(shape)
        return values if dtype == torch.float32 else values.to(dtype)


@dataclass(frozen=True, eq=False)
class QuantisedTensor:
    """A quantised tensor as read from a GGUF file, before a layer adopts its blocks."""

    blocks: torch.Tensor  # uint8, contiguous, format.nbytes(shape) bytes (memory-mapped from the file)
    format: QuantFormat
    shape: torch.Size  # the values' torch shape

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.format.dequantize(self.blocks, tuple(self.shape), dtype)


# --- pieces of blocks -------------------------------------------------------------------------

def _split(blocks: torch.Tensor, *sizes: int) -> list[torch.Tensor]:
    """Consecutive byte fields of each block (the last one takes the rest)."""
    rest = blocks.shape[1] - sum(sizes)
    return list(torch.split(blocks, (*sizes, rest), dim=1))


def _float(codes: torch.Tensor, out: Optional[torch.Tensor]) -> torch.Tensor:
    """`codes` as float32, in `out` when given (the tensor the decoder then scales in place)."""
    return codes.float() if out is None else out.view(codes.shape).copy_(codes)


def _f16(field: torch.Tensor) -> torch.Tensor:  # uint8 [n, 2] -> float32 [n, 1]
    return field.contiguous().view(torch.float16).float()


def _shifted(field: torch.Tensor, shifts: tuple[int, ...], width: int) -> torch.Tensor:
    """uint8 [n, bytes] -> [n, bytes // width, len(shifts), width]: each run of `width` bytes shifted right
    by every shift in turn (ggml packs the low bits of one group and the high bits of the next in one byte).
    Python-int shifts: no shift tensor is copied to the device on each call."""
    runs = field.reshape(field.shape[0], -1, width)
    return torch.stack([runs >> shift for shift in shifts], dim=2)


def _nibbles(field: torch.Tensor, width: int) -> torch.Tensor:  # uint8 [n, b] -> uint8 [n, 2b]
    return (_shifted(field, (0, 4), width) & 0x0F).reshape(field.shape[0], -1)


def _bits(field: torch.Tensor) -> torch.Tensor:
    """uint8 [n, b] -> uint8 [n, 8b]: bit j of the little-endian bit string, j = 0 .. 8b-1."""
    return (torch.stack([field >> shift for shift in range(8)], dim=-1) & 1).reshape(field.shape[0], -1)


def _k_scales_mins(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Q4_K/Q5_K: 12 bytes -> eight 6-bit scales and eight 6-bit mins (float32 [n, 8] each).

    Bytes 0-3 hold scales 0-3 (low 6 bits) and the top bits of scales 4-7; bytes 4-7 the same for the
    mins; bytes 8-11 the low nibbles of scales 4-7 (low half) and mins 4-7 (high half)."""
    n = packed.shape[0]
    low, high, mixed = packed.reshape(n, 3, 4).unbind(1)  # [n, 4] each
    scales = torch.cat([low & 0x3F, (mixed & 0x0F) | ((low >> 2) & 0x30)], dim=1)
    mins = torch.cat([high & 0x3F, (mixed >> 4) | ((high >> 2) & 0x30)], dim=1)
    return scales.float(), mins.float()


# --- decoders ---------------------------------------------------------------------------------

def _q4_0(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    d, qs = _split(blocks, 2)
    q = _nibbles(qs, 16).to(torch.int8) - 8  # [n, 32]
    return _float(q, out).mul_(_f16(d))


def _q4_1(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    d, m, qs = _split(blocks, 2, 2)
    return _float(_nibbles(qs, 16), out).mul_(_f16(d)).add_(_f16(m))


def _five_bit(qh: torch.Tensor, qs: torch.Tensor) -> torch.Tensor:  # uint8 [n, 32], 0..31
    return _nibbles(qs, 16) | (_bits(qh) << 4)


def _q5_0(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    d, qh, qs = _split(blocks, 2, 4)
    q = _five_bit(qh, qs).to(torch.int8) - 16
    return _float(q, out).mul_(_f16(d))


def _q5_1(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    d, m, qh, qs = _split(blocks, 2, 2, 4)
    return _float(_five_bit(qh, qs), out).mul_(_f16(d)).add_(_f16(m))


def _q8_0(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    d, qs = _split(blocks, 2)
    return _float(qs.view(torch.int8), out).mul_(_f16(d))  # (a same-size dtype view needs no copy)


def _q2_k(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    n = blocks.shape[0]
    scales, qs, d, dmin = _split(blocks, QK_K // 16, QK_K // 4, 2)
    group_scale = (_f16(d) * (scales & 0x0F).float()).reshape(n, 16, 1)
    group_min = (_f16(dmin) * (scales >> 4).float()).reshape(n, 16, 1)
    q = _float((_shifted(qs, (0, 2, 4, 6), 32) & 3).reshape(n, 16, 16), out)
    return q.mul_(group_scale).sub_(group_min).reshape(n, QK_K)


def _q3_k(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    n = blocks.shape[0]
    hmask, qs, packed, d = _split(blocks, QK_K // 8, QK_K // 4, 12)
    # 16 six-bit scales: low nibbles in bytes 0-7 (two per byte), top two bits in bytes 8-11 (four per byte).
    low = (_shifted(packed[:, :8], (0, 4), 8) & 0x0F).reshape(n, 16)
    high = (_shifted(packed[:, 8:], (0, 2, 4, 6), 4) & 3).reshape(n, 16)
    scales = ((low | (high << 4)).to(torch.int8) - 32).float()
    group_scale = (_f16(d) * scales).reshape(n, 16, 1)
    q_low = (_shifted(qs, (0, 2, 4, 6), 32) & 3).reshape(n, 16, 16)
    # A set hmask bit means "no offset"; a clear one subtracts 4.
    q_high = ((_shifted(hmask, tuple(range(8)), 32) & 1) ^ 1).reshape(n, 16, 16)
    q = _float(q_low.to(torch.int8) - (q_high << 2).to(torch.int8), out)
    return q.mul_(group_scale).reshape(n, QK_K)


def _q4_k(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    n = blocks.shape[0]
    d, dmin, packed, qs = _split(blocks, 2, 2, 12)
    scales, mins = _k_scales_mins(packed)
    group_scale = (_f16(d) * scales).reshape(n, 8, 1)
    group_min = (_f16(dmin) * mins).reshape(n, 8, 1)
    q = _float((_shifted(qs, (0, 4), 32) & 0x0F).reshape(n, 8, 32), out)
    return q.mul_(group_scale).sub_(group_min).reshape(n, QK_K)


def _q5_k(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    n = blocks.shape[0]
    d, dmin, packed, qh, qs = _split(blocks, 2, 2, 12, QK_K // 8)
    scales, mins = _k_scales_mins(packed)
    group_scale = (_f16(d) * scales).reshape(n, 8, 1)
    group_min = (_f16(dmin) * mins).reshape(n, 8, 1)
    low = (_shifted(qs, (0, 4), 32) & 0x0F).reshape(n, 8, 32)
    high = (_shifted(qh, tuple(range(8)), 32) & 1).reshape(n, 8, 32)
    q = _float(low | (high << 4), out)
    return q.mul_(group_scale).sub_(group_min).reshape(n, QK_K)


def _q6_k(blocks: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    n = blocks.shape[0]
    ql, qh, scales, d = _split(blocks, QK_K // 2, QK_K // 4, QK_K // 16)
    group_scale = (_f16(d) * scales.view(torch.int8).float()).reshape(n, 16, 1)
    low = (_shifted(ql, (0, 4), 64) & 0x0F).reshape(n, 8, 32)
    high = (_shifted(qh, (0, 2, 4, 6), 32) & 3).reshape(n, 8, 32)
    q = _float(((low | (high << 4)).to(torch.int8) - 32).reshape(n, 16, 16), out)
    return q.mul_(group_scale).reshape(n, QK_K)


# The one table of quantised types Kinema reads: name, ggml type id, values per block, bytes per block.
QUANT_FORMATS: dict[int, QuantFormat] = {f.ggml_type: f for f in (
    QuantFormat("Q4_0", 2, 32, 2 + 16, _q4_0),
    QuantFormat("Q4_1", 3, 32, 2 + 2 + 16, _q4_1),
    QuantFormat("Q5_0", 6, 32, 2 + 4 + 16, _q5_0),
    QuantFormat("Q5_1", 7, 32, 2 + 2 + 4 + 16, _q5_1),
    QuantFormat("Q8_0", 8, 32, 2 + 32, _q8_0),
    QuantFormat("Q2_K", 10, QK_K, QK_K // 16 + QK_K // 4 + 2 + 2, _q2_k),
    QuantFormat("Q3_K", 11, QK_K, QK_K // 8 + QK_K // 4 + 12 + 2, _q3_k),
    QuantFormat("Q4_K", 12, QK_K, 2 + 2 + 12 + QK_K // 2, _q4_k),
    QuantFormat("Q5_K", 13, QK_K, 2 + 2 + 12 + QK_K // 8 + QK_K // 2, _q5_k),
    QuantFormat("Q6_K", 14, QK_K, QK_K // 2 + QK_K // 4 + QK_K // 16 + 2, _q6_k),
)}

# Unquantised ggml types: read as torch tensors of this dtype, straight from the memory-mapped file.
PLAIN_DTYPES: dict[int, tuple[str, torch.dtype]] = {
    0: ("F32", torch.float32),
    1: ("F16", torch.float16),
    30: ("BF16", torch.bfloat16),
}

SUPPORTED_TYPE_NAMES = tuple(name for name, _ in PLAIN_DTYPES.values()) + tuple(
    f.name for f in QUANT_FORMATS.values())
