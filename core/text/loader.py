"""load_text_encoder: any umT5 file users have -> a ready TextEncoder.

Accepted: Wan's official `models_t5_umt5-xxl-enc-bf16.pth`, HF/diffusers `UMT5EncoderModel`
folders or files, ComfyUI `umt5_xxl_fp16` / `fp8_e4m3fn` / `fp8_e4m3fn_scaled` safetensors.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import torch

from ..checkpoints.io import CheckpointError, read_state_dict
from .config import UMT5Config
from .encoder import TextEncoder
from .layouts import EMBEDDED_SPIECE_KEY, to_canonical
from .tokenizer import TOKENIZER_HELP, Tokenizer, TokenizerError, find_tokenizer_file
from .umt5 import UMT5Encoder

TokenizerSource = Union[Tokenizer, str, os.PathLike, None]

# Tiny tensors kept in fp32 whatever the file stores: their precision is free and they feed
# every logit (relative bias) or every activation (norms).
_FP32_SUFFIXES = ("norm1.weight", "norm2.weight", "norm.weight", "pos_embedding.embedding.weight", "weight_scale")


def load_text_encoder(
    path: str | os.PathLike,
    tokenizer: TokenizerSource = None,
    dtype: Optional[torch.dtype] = None,
    device: str | torch.device = "cpu",
) -> TextEncoder:
    """`dtype` is the compute dtype (default fp32 on CPU, bf16 on CUDA as Wan runs it). Weights keep
    their stored precision (bf16, fp16, fp8) unless wider than `dtype`, and are upcast per layer.
    `tokenizer`: a Tokenizer, a spiece.model / tokenizer.json path, or None to use the vocabulary
    embedded in the file or found beside it."""
    device = torch.device(device)
    compute_dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    state = read_state_dict(path, subfolder_hints=("text_encoder",))
    tensors = dict(state.tensors)
    embedded = tensors.pop(EMBEDDED_SPIECE_KEY, None)
    canonical = to_canonical(tensors, state.source)
    config = UMT5Config.from_state_dict(canonical, state.source)
    model = _build_model(config, canonical, compute_dtype, state.source)
    vocabulary = _resolve_tokenizer(tokenizer, embedded, Path(path), state.source)
    model = model.to(device)
    return TextEncoder(model, vocabulary, compute_dtype)


def _build_model(config: UMT5Config, tensors: dict[str, torch.Tensor], compute_dtype: torch.dtype, source: str) -> UMT5Encoder:
    # Built on the meta device and filled by assignment, so the XXL model never exists twice in memory.
    with torch.device("meta"):
        model = UMT5Encoder(config)
    model.requires_grad_(False).eval()
    stored = {key: _storage(key, t, compute_dtype) for key, t in tensors.items()}
    try:
        result = model.load_state_dict(stored, strict=False, assign=True)
    except RuntimeError as err:  # shape mismatches
        details = " ".join(str(err).split())
        raise CheckpointError(f"{source}: tensor shapes do not fit a umT5 encoder ({config}): {details}") from err
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{source}: incomplete or inconsistent umT5 encoder: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}; the file may be truncated or a partial merge, download it again"
        )
    return model


def _storage(key: str, t: torch.Tensor, compute_dtype: torch.dtype) -> torch.Tensor:
    if key.endswith(_FP32_SUFFIXES):
        return t.float()
    if t.is_floating_point() and t.element_size() > compute_dtype.itemsize:
        return t.to(compute_dtype)  # never store wider than we compute (fp32 file, bf16 run)
    return t


def _resolve_tokenizer(tokenizer: TokenizerSource, embedded: Optional[torch.Tensor], path: Path, source: str) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if tokenizer is not None:
        return Tokenizer.from_path(tokenizer)
    if embedded is not None:
        if embedded.dtype != torch.uint8:
            raise CheckpointError(f"{source}: '{EMBEDDED_SPIECE_KEY}' should be a uint8 tensor, found {embedded.dtype}")
        return Tokenizer.from_spiece_bytes(embedded.numpy().tobytes(), f"{source} (embedded {EMBEDDED_SPIECE_KEY})")
    folders = _tokenizer_folders(path)
    for folder in folders:
        found = find_tokenizer_file(folder)
        if found is not None:
            return Tokenizer.from_path(found)
    raise TokenizerError(
        f"{source}: no tokenizer: the file embeds no '{EMBEDDED_SPIECE_KEY}' and no spiece.model or tokenizer.json "
        f"was found in {', '.join(str(f) for f in folders)}; {TOKENIZER_HELP}"
    )


def _tokenizer_folders(path: Path) -> list[Path]:
    """Where Wan-AI repos (google/umt5-xxl/) and diffusers pipelines (tokenizer/) keep the vocabulary."""
    base = path if path.is_dir() else path.parent
    candidates = [base, base / "google" / "umt5-xxl", base / "tokenizer", base.parent / "tokenizer"]
    return list(dict.fromkeys(candidates))
