"""Tiny GGUF files written with the `gguf` package the way ComfyUI-GGUF's tools lay them out.

city96/ComfyUI-GGUF tools/convert.py writes names as in the (prefix-stripped) state dict, 1-D / tiny /
`.modulation` tensors in F32 and the rest in F16; tensors of more than 4 dimensions (Wan's patch
embedding) are left out and added back as F32 afterwards (tools/fix_5d_tensors.py). Its patched
llama-quantize (tools/lcpp.patch) then quantises the 2-D tensors of the transformer blocks and keeps
the embeddings, time projection, image embedding and head as they are; "_M" files put some tensors in a
larger type. Where a row is not whole blocks, the tools store F16 instead, or (convert.py's shape fix)
reshape the tensor into rows of 256 and record its torch shape in `comfy.gguf.orig_shape.<name>`.

gguf's Python code quantises only the legacy types (Q4_0 ... Q8_0); K-quant blocks are drawn at random
with finite fp16 scales (`random_blocks`): every byte pattern is a valid block, so gguf's numpy
`dequantize` of the same bytes is the reference either way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import gguf
import numpy as np
import torch

Q = gguf.GGMLQuantizationType
QUANTISABLE = ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0")  # types gguf's Python code can quantise
# Byte offsets of each block's fp16 scale fields (ggml-common.h block structs): set to finite values.
FP16_FIELDS = {"Q4_0": (0,), "Q4_1": (0, 2), "Q5_0": (0,), "Q5_1": (0, 2), "Q8_0": (0,),
               "Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}
_SMALL = 1024  # ComfyUI-GGUF's QUANTIZATION_THRESHOLD: tensors of at most this many values stay F32
_ROW = 256  # ComfyUI-GGUF reshapes into rows of 256 values when a row is not whole blocks


def random_blocks(type_name: str, n_blocks: int, rng: np.random.Generator, scale: float = 1e-3) -> np.ndarray:
    """uint8 [n_blocks, type_size]: random codes, fp16 scales uniform in [-scale, scale] (never inf/nan)."""
    _, type_size = gguf.GGML_QUANT_SIZES[Q[type_name]]
    blocks = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    for offset in FP16_FIELDS[type_name]:
        values = rng.uniform(-scale, scale, size=n_blocks).astype(np.float16)
        blocks[:, offset:offset + 2] = values.view(np.uint8).reshape(n_blocks, 2)
    return blocks


def encode(values: np.ndarray, type_name: str, rng: np.random.Generator) -> np.ndarray:
    """`values` (float32 [..., k], k whole blocks) in `type_name`: quantised by gguf where it can, else
    random blocks of that many values (K-quants; the values themselves are then not used; scales drawn
    so that the weights are about as large as a trained model's)."""
    qtype = Q[type_name]
    if type_name in QUANTISABLE or qtype in (Q.F32, Q.F16, Q.BF16):
        return gguf.quants.quantize(values, qtype)
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = random_blocks(type_name, values.size // block_size, rng, scale=1e-4)
    return blocks.reshape(*values.shape[:-1], values.shape[-1] // block_size * type_size)


# Wan tensors that ComfyUI-GGUF's llama-quantize never quantises (tools/lcpp.patch, LLM_ARCH_WAN).
KEPT_BY_QUANTIZE = ("modulation", "patch_embedding.", "text_embedding.", "time_projection.", "time_embedding.",
                    "img_emb.", "head.")


def write_comfy_gguf(path: Path, tensors: dict[str, torch.Tensor], weight_type: str, *, arch: Optional[str] = "wan",
                     prefix: str = "", seed: int = 0, every_2d: bool = False,
                     larger: Optional[dict[str, str]] = None) -> dict[str, torch.Tensor]:
    """Write `tensors` (fp32, official names) as ComfyUI-GGUF's tools do with the block weights in
    `weight_type` (`larger`: name fragment -> type, as "_M" files; `every_2d`: every 2-D tensor quantised,
    rows reshaped to 256 where needed). Returns what the file holds, dequantised by gguf's numpy
    reference (float32, torch shapes)."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(path=None, arch=arch) if arch is not None else _writer_without_arch()
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    held: dict[str, torch.Tensor] = {}
    five_d = {}
    for key, value in tensors.items():
        data = value.float().numpy()
        if data.ndim > 4:  # the converter cannot write these; fix_5d_tensors adds them back in F32
            five_d[key] = data
            continue
        type_name = "F16"
        if data.ndim == 1 or data.size <= _SMALL or ".modulation" in key:
            type_name = "F32"
        elif data.ndim == 2 and (every_2d or not any(part in key for part in KEPT_BY_QUANTIZE)):
            type_name = next((t for part, t in (larger or {}).items() if part in key), weight_type)
        block_size, _ = gguf.GGML_QUANT_SIZES[Q[type_name]]
        stored = data
        if data.shape[-1] % block_size:
            if every_2d and data.size % _ROW == 0 and _ROW % block_size == 0:
                stored = data.reshape(-1, _ROW)
                writer.add_array(f"comfy.gguf.orig_shape.{prefix}{key}", [int(n) for n in data.shape])
            else:
                type_name = "F16"  # the converter's fallback when a type cannot take the shape
        encoded = encode(stored, type_name, rng)
        writer.add_tensor(prefix + key, encoded, raw_dtype=Q[type_name])
        held[key] = torch.from_numpy(np.array(gguf.quants.dequantize(encoded, Q[type_name]),
                                              dtype=np.float32)).reshape(value.shape)
    for key, data in five_d.items():
        writer.add_tensor(prefix + key, data, raw_dtype=Q.F32)
        held[key] = torch.from_numpy(data.copy())
    save(writer, path)
    return held


def save(writer: gguf.GGUFWriter, path: Path) -> None:
    """Write what `writer` holds (header, metadata, tensors) to `path`."""
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _writer_without_arch():
    """stable-diffusion.cpp's files carry no general.architecture."""
    writer = gguf.GGUFWriter(path=None, arch="wan")
    for kv in writer.kv_data:
        kv.pop(gguf.Keys.General.ARCHITECTURE, None)
    return writer


def write_random_wan_gguf(path: Path, config, weight_type: str = "Q4_K", seed: int = 0) -> Path:
    """A Wan T2V DiT of `config`'s real shapes in ComfyUI-GGUF's layout, written one tensor at a time
    (memory stays at one tensor): Linear weights random `weight_type` blocks, the rest small F32 values."""
    from kinema.core.dit.model import WanDiT
    from kinema.core.layers import Linear

    with torch.device("meta"):
        model = WanDiT(config)
    linear_weights = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, Linear)}
    rng = np.random.default_rng(seed)
    block_size, type_size = gguf.GGML_QUANT_SIZES[Q[weight_type]]
    plan = []  # (name, byte shape, numpy dtype, type)
    for key, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        if key in linear_weights:
            plan.append((key, (shape[0], shape[1] // block_size * type_size), np.uint8, Q[weight_type]))
        else:
            plan.append((key, shape, np.float32, Q.F32))
    writer = gguf.GGUFWriter(path=None, arch="wan")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, shape, dtype, qtype in plan:
        writer.add_tensor_info(key, shape, np.dtype(dtype), int(np.prod(shape)) * np.dtype(dtype).itemsize,
                               raw_dtype=qtype)
    writer.write_header_to_file(path=str(path))
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for key, shape, dtype, qtype in plan:
        if qtype == Q.F32:
            data = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)
        else:
            data = random_blocks(weight_type, shape[0] * shape[1] // type_size, rng, scale=1e-4).reshape(shape)
        writer.write_tensor_data(data)
    writer.close()
    return path
