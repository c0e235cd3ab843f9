"""Reading GGUF diffusion-model files as ComfyUI-GGUF's converter writes them.

Layout of such a file (city96/ComfyUI-GGUF, tools/convert.py):
- `general.architecture` names the model family ("wan" for every Wan DiT); files made by
  stable-diffusion.cpp have none, and some tools write "pig" or "cow": those are recognised by
  their tensor names instead (here: by the Wan key layouts).
- Tensor names are the original state dict's, usually without ComfyUI's `model.diffusion_model.`
  prefix (some files keep it).
- Dimensions are stored in ggml order (innermost first): the torch shape is the reverse, unless a
  `comfy.gguf.orig_shape.<name>` array gives it (tensors that were flattened to rows of 256 to quantise).
- 1-D tensors, tiny ones and Wan's `.modulation` tables are F32; the 5-D patch embeddings that the
  quantiser cannot take are added back afterwards as F32 (tools/fix_5d_tensors.py).

Plain types (F32, F16, BF16) become torch tensors viewing the memory-mapped file; quantised ones stay
blocks of bytes (`QuantisedTensor`), dequantised by the layer that uses them, one layer at a time.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import torch

from .gguf_dequant import PLAIN_DTYPES, QUANT_FORMATS, SUPPORTED_TYPE_NAMES, QuantisedTensor
from .io import CheckpointError, StateDict

ARCHITECTURE_KEY = "general.architecture"
ORIG_SHAPE_PREFIX = "comfy.gguf.orig_shape."
# Architecture values that name no family: decided by the tensor names (see the module docstring).
UNNAMED_ARCHITECTURES = (None, "pig", "cow")
# What other GGUF files hold, for the refusal message (ComfyUI-GGUF's families and common text models).
_OTHER_FAMILIES = {
    "flux": "a Flux image model", "sd1": "a Stable Diffusion 1.x image model", "sdxl": "an SDXL image model",
    "sd3": "a Stable Diffusion 3 image model", "aura": "an AuraFlow image model", "hidream": "a HiDream image model",
    "cosmos": "a Cosmos video model", "ltxv": "an LTX-Video model", "hyvid": "a HunyuanVideo model",
    "lumina2": "a Lumina 2 image model", "qwen_image": "a Qwen-Image model",
    "t5": "a T5 text encoder", "t5encoder": "a T5 text encoder",
}


def read_gguf(path: Path, architecture: str) -> StateDict:
    """The tensors of a GGUF file of `architecture` (e.g. "wan"); a file of another one is refused."""
    import gguf

    reader = _open(path)
    found = _string_field(reader, ARCHITECTURE_KEY)
    if found != architecture and found not in UNNAMED_ARCHITECTURES:
        name = _string_field(reader, "general.name")
        what = _OTHER_FAMILIES.get(found, "a language model or another non-Wan model")
        raise CheckpointError(
            f"{path}: this GGUF file holds {what} (general.architecture = {found!r}"
            f"{f', general.name = {name!r}' if name else ''}), not a Wan DiT ('{architecture}'); choose a Wan GGUF "
            f"file (ComfyUI-GGUF's Wan conversions say general.architecture = '{architecture}')"
        )
    tensors: dict[str, object] = {}
    for tensor in reader.tensors:
        tensors[tensor.name] = _tensor(reader, tensor, path, gguf)
    metadata = {"format": "gguf", "gguf.architecture": str(found)}
    return StateDict(tensors, str(path), metadata)


def _open(path: Path):
    import gguf

    try:
        return gguf.GGUFReader(str(path), "r")
    except (ValueError, OSError, IndexError, KeyError) as err:
        raise CheckpointError(
            f"{path}: not a readable GGUF file ({err}); the download may be truncated or corrupt: download it again"
        ) from err


def _tensor(reader, tensor, path: Path, gguf):
    type_id = int(tensor.tensor_type)
    shape = _orig_shape(reader, tensor.name, path) or torch.Size(int(n) for n in reversed(tensor.shape.tolist()))
    with warnings.catch_warnings():
        # The memory map is read-only, and so are the tensors viewing it: nothing writes to weights.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        data = torch.from_numpy(tensor.data)
    if type_id in PLAIN_DTYPES:
        _, dtype = PLAIN_DTYPES[type_id]
        values = data.reshape(-1).view(torch.uint8).view(dtype) if data.dtype != dtype else data.reshape(-1)
        if values.numel() != shape.numel():
            raise _size_error(path, tensor.name, shape, values.numel() * values.element_size())
        return values.view(shape)
    quant = QUANT_FORMATS.get(type_id)
    if quant is None:
        try:
            type_name = gguf.GGMLQuantizationType(type_id).name
        except ValueError:
            type_name = f"ggml type {type_id}"
        raise CheckpointError(
            f"{path}: tensor {tensor.name!r} is stored as {type_name}, a GGUF type Kinema does not read; supported: "
            f"{', '.join(SUPPORTED_TYPE_NAMES)}. Choose a file quantised to one of these (e.g. Q8_0, Q6_K, Q5_K_M, Q4_K_M)"
        )
    blocks = data.reshape(-1)
    # Whole blocks in all (not per row: a tensor may have been flattened into rows of 256 to quantise).
    if shape.numel() % quant.block_size or blocks.numel() != quant.nbytes(tuple(shape)):
        raise _size_error(path, tensor.name, shape, blocks.numel())
    return QuantisedTensor(blocks, quant, shape)


def _size_error(path: Path, name: str, shape: torch.Size, nbytes: int) -> CheckpointError:
    return CheckpointError(f"{path}: tensor {name!r} holds {nbytes} bytes, which is not a tensor of shape "
                           f"{tuple(shape)}; the file is corrupt: download it again")


def _string_field(reader, key: str) -> Optional[str]:
    field = reader.get_field(key)
    if field is None or not field.data:
        return None
    return bytes(field.parts[field.data[-1]]).decode("utf-8", errors="replace")


def _orig_shape(reader, name: str, path: Path) -> Optional[torch.Size]:
    """The torch shape ComfyUI-GGUF recorded for a tensor it reshaped to quantise, if any."""
    field = reader.get_field(ORIG_SHAPE_PREFIX + name)
    if field is None:
        return None
    try:
        return torch.Size(int(field.parts[index][0]) for index in field.data)
    except (IndexError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: the metadata {ORIG_SHAPE_PREFIX + name!r} is not a list of sizes ({err}); "
                              f"the file is corrupt") from err
