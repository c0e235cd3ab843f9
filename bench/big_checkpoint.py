"""Full-size random-weight Wan DiT files, written tensor by tensor, for speed and memory benches.

    path = write_wan_checkpoint(folder / "wan14B_fp8.safetensors", preset="14B", layout="comfy_fp8_scaled")
    with temporary_wan_checkpoint("14B", "comfy_fp8_scaled") as path:  # deleted afterwards, even on error
        ...

Keys, shapes and dtypes are those of the release files in ComfyUI's layout (`model.diffusion_model.`
prefix): "comfy" stores every tensor in `dtype`; "comfy_fp8_scaled" stores every Linear weight in
float8_e4m3fn with a float32 `.scale_weight` beside it and a `scaled_fp8` marker (the layout of
Comfy-Org's `*_fp8_scaled.safetensors`), the rest in `dtype`. Values are random with the
magnitudes of trained weights (Linear std 1/sqrt(fan_in), norm weights near 1), so activations
stay finite and away from denormals, which would distort CPU timings.

The writer holds one chunk of one tensor at a time (CHUNK elements, drawn from a fixed pool of
normal samples), so writing a 14 GB file costs ~100 MB of memory and a few minutes at most.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
from pathlib import Path
from typing import Iterator, Optional

import torch

from kinema.core.dit.config import DiTConfig
from kinema.core.dit.layouts import COMFY_PREFIX
from kinema.core.dit.model import WanDiT
from kinema.core.layers import Linear

PRESETS = {
    "1.3B": DiTConfig(dim=1536, ffn_dim=8960, num_layers=30, num_heads=12, in_dim=16, out_dim=16),
    "14B": DiTConfig(dim=5120, ffn_dim=13824, num_layers=40, num_heads=40, in_dim=16, out_dim=16),
}
LAYOUTS = ("comfy", "comfy_fp8_scaled")
CHUNK = 1 << 22  # elements per write (and size of the pool of normal samples)
_FP8_SPREAD = 32.0  # fp8 codes = N(0, 1) x 32: max ~5 sigma = 160 < 448, most values normal numbers
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
                       torch.float8_e4m3fn: "F8_E4M3"}


def write_wan_checkpoint(
    path: str | Path,
    preset: str = "14B",
    layout: str = "comfy_fp8_scaled",
    dtype: torch.dtype = torch.bfloat16,
    num_layers: Optional[int] = None,
    seed: int = 0,
) -> Path:
    """Writes a random T2V DiT of `preset` ("1.3B" or "14B"; `num_layers` blocks instead of all of
    them if given) and returns its path."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {LAYOUTS}")
    if dtype not in _SAFETENSORS_DTYPES or dtype == torch.float8_e4m3fn:
        raise ValueError(f"dtype must be float32, bfloat16 or float16 (fp8 is a layout), got {dtype}")
    config = PRESETS[preset]
    if num_layers is not None:
        config = dataclasses.replace(config, num_layers=num_layers)
    entries = _entries(config, layout, dtype)
    generator = torch.Generator().manual_seed(seed)
    pool = torch.randn(CHUNK, generator=generator)  # [CHUNK] N(0, 1)
    pool8 = (pool * _FP8_SPREAD).to(torch.float8_e4m3fn)
    path = Path(path)
    with open(path, "wb") as f:
        f.write(_header(entries))
        for entry in entries:
            for chunk in _chunks(entry, pool, pool8, generator):
                f.write(chunk.view(torch.uint8).numpy().data)
    return path


@contextlib.contextmanager
def temporary_wan_checkpoint(preset: str = "14B", layout: str = "comfy_fp8_scaled", *, folder: Optional[str] = None,
                             **options) -> Iterator[Path]:
    """`write_wan_checkpoint` into a fresh temporary folder (under `folder` if given), removed on exit,
    also when the caller fails or is interrupted."""
    with tempfile.TemporaryDirectory(prefix="kinema_bench_", dir=folder) as tmp:
        yield write_wan_checkpoint(Path(tmp) / f"wan_{preset}_{layout}.safetensors", preset, layout, **options)


class _Entry:
    """One stored tensor: its key, shape, dtype and the (mean, std) of its values."""

    def __init__(self, key: str, shape: tuple[int, ...], dtype: torch.dtype, mean: float = 0.0, std: float = 1.0):
        self.key, self.shape, self.dtype, self.mean, self.std = key, shape, dtype, mean, std

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * torch.tensor([], dtype=self.dtype).element_size()


def _entries(config: DiTConfig, layout: str, dtype: torch.dtype) -> list[_Entry]:
    # Names and shapes come from the model itself, built without memory on the meta device.
    with torch.device("meta"):
        model = WanDiT(config)
    linear_weights = {f"{name}.weight" for name, module in model.named_modules() if isinstance(module, Linear)}
    entries = []
    for key, tensor in model.state_dict().items():
        shape = tuple(tensor.shape)
        if key in linear_weights and layout == "comfy_fp8_scaled":
            # The codes are N(0, 1) x _FP8_SPREAD; the scale brings them to std 1/sqrt(fan_in).
            entries.append(_Entry(COMFY_PREFIX + key, shape, torch.float8_e4m3fn))
            scale = 1.0 / (_FP8_SPREAD * math.sqrt(shape[1]))
            entries.append(_Entry(COMFY_PREFIX + key[: -len("weight")] + "scale_weight", (), torch.float32, scale, 0.0))
        else:
            entries.append(_Entry(COMFY_PREFIX + key, shape, dtype, *_magnitude(key, shape)))
    if layout == "comfy_fp8_scaled":
        # ComfyUI's marker of the format: an empty tensor whose dtype names the fp8 type.
        entries.append(_Entry(COMFY_PREFIX + "scaled_fp8", (0,), torch.float8_e4m3fn))
    return entries


def _magnitude(key: str, shape: tuple[int, ...]) -> tuple[float, float]:
    """(mean, std) of a tensor's values, like a trained Wan DiT's."""
    if "norm" in key and key.endswith(".weight"):
        return 1.0, 0.05
    if key.endswith(".bias"):
        return 0.0, 0.02
    if key.endswith("modulation"):
        return 0.0, 1.0 / math.sqrt(shape[-1])
    fan_in = math.prod(shape[1:])  # Linear [out, in]; patch embedding [out, in, 1, 2, 2]
    return 0.0, 1.0 / math.sqrt(fan_in)


def _header(entries: list[_Entry]) -> bytes:
    offsets, start = {}, 0
    for e in entries:
        offsets[e.key] = {"dtype": _SAFETENSORS_DTYPES[e.dtype], "shape": list(e.shape),
                          "data_offsets": [start, start + e.nbytes]}
        start += e.nbytes
    header = json.dumps({"__metadata__": {"format": "pt", "content": "kinema random-weight bench file"},
                         **offsets}).encode()
    header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned
    return len(header).to_bytes(8, "little") + header


def _chunks(entry: _Entry, pool: torch.Tensor, pool8: torch.Tensor,
            generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The entry's values in order, at most CHUNK elements at a time, from a random start in the pool."""
    remaining = entry.numel
    if entry.std == 0.0:  # a constant (the fp8 scales)
        yield torch.full((remaining,), entry.mean, dtype=entry.dtype)
        return
    start = int(torch.randint(0, CHUNK, (1,), generator=generator))
    while remaining > 0:
        count = min(remaining, CHUNK - start)
        if entry.dtype == torch.float8_e4m3fn:
            yield pool8[start:start + count]
        else:
            yield (pool[start:start + count] * entry.std + entry.mean).to(entry.dtype)
        remaining -= count
        start = 0
