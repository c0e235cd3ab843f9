"""Reading tensors from the files users have: safetensors (single or sharded with an index
json), diffusers folders and official `.pth` pickles (weights only, never code).

Errors name the file and say what is wrong and what to do, because a wrong or truncated file
is the most common failure users meet.
"""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import torch

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint file cannot be used: wrong kind, corrupt, truncated, or an unknown layout."""


@dataclass
class StateDict:
    """Tensors of one checkpoint with where they came from (for error messages)."""

    tensors: dict[str, torch.Tensor]
    source: str
    metadata: dict[str, str] = field(default_factory=dict)

    def keys(self) -> Iterable[str]:
        return self.tensors.keys()

    def __contains__(self, key: str) -> bool:
        return key in self.tensors

    def __getitem__(self, key: str) -> torch.Tensor:
        return self.tensors[key]

    def __len__(self) -> int:
        return len(self.tensors)


def read_state_dict(path: str | os.PathLike, subfolder_hints: tuple[str, ...] = (),
                    gguf_architecture: Optional[str] = None) -> StateDict:
    """All tensors of a checkpoint file or folder, on CPU, in their stored dtypes.

    `path` may be a `.safetensors` file, a sharded `*.safetensors.index.json`, a `.pth`/`.pt`/`.bin`
    pickle (loaded with `weights_only=True`), or a folder holding one of those (diffusers layout;
    `subfolder_hints` such as `("transformer",)` are tried inside a pipeline folder). A `.gguf` file is
    read only where the caller names the architecture it expects (`gguf_architecture`, e.g. "wan"):
    its quantised tensors are `QuantisedTensor`s, which only the layers made for them take.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.is_dir():
        return _read_folder(p, subfolder_hints)
    name = p.name.lower()
    if name.endswith(".index.json"):
        return _read_sharded(p)
    if name.endswith(SAFETENSORS_SUFFIXES):
        return _read_safetensors(p)
    if name.endswith(PICKLE_SUFFIXES):
        return _read_pickle(p)
    if name.endswith(".gguf"):
        if gguf_architecture is None:
            raise CheckpointError(f"{p}: Kinema reads GGUF files for the Wan DiT (diffusion model) only; use a "
                                  f".safetensors version of this model")
        from .gguf_reader import read_gguf

        return read_gguf(p, gguf_architecture)
    raise CheckpointError(
        f"{p}: unknown checkpoint format {p.suffix!r}; expected .safetensors, a sharded .index.json, "
        f".pth/.pt/.bin, .gguf (Wan DiT only), or a diffusers folder"
    )


def _read_safetensors(p: Path) -> StateDict:
    from safetensors import SafetensorError, safe_open

    size = p.stat().st_size
    if size < 8:
        raise CheckpointError(f"{p}: file is {size} bytes, not a safetensors checkpoint (empty or truncated download?)")
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(p), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(
            f"{p}: not a readable safetensors file ({err}); the download may be truncated or corrupt: "
            f"download it again"
        ) from err
    return StateDict(tensors, str(p), metadata)


def _read_pickle(p: Path) -> StateDict:
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{p}: refused to load: the pickle holds more than tensors ({err}). Kinema loads .pth files "
            f"with weights_only=True and never runs code from a checkpoint; convert it to .safetensors"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({err}); the file may be truncated") from err
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{p}: expected a dict of tensors, found {type(obj).__name__}")
    return StateDict(dict(obj), str(p))


def _read_sharded(index_path: Path) -> StateDict:
    try:
        index = json.loads(index_path.read_text())
        weight_map: dict[str, str] = index["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{index_path}: not a valid shard index (needs a 'weight_map'): {err}") from err
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.parent / shard
        if not shard_path.exists():
            raise CheckpointError(f"{index_path}: shard {shard} is missing; download every shard of this model")
        part = read_state_dict(shard_path)
        tensors.update(part.tensors)
    missing = [k for k in weight_map if k not in tensors]
    if missing:
        raise CheckpointError(f"{index_path}: shards lack {len(missing)} indexed tensors, e.g. {missing[:3]}")
    return StateDict(tensors, str(index_path))


def _read_folder(folder: Path, subfolder_hints: tuple[str, ...]) -> StateDict:
    for hint in subfolder_hints:
        if (folder / hint).is_dir():
            return _read_folder(folder / hint, ())
    indexes = sorted(folder.glob("*.safetensors.index.json"))
    if len(indexes) == 1:
        return _read_sharded(indexes[0])
    singles = sorted(f for f in folder.iterdir() if f.name.lower().endswith(SAFETENSORS_SUFFIXES))
    if len(singles) == 1:
        return _read_safetensors(singles[0])
    if not singles:
        pickles = sorted(f for f in folder.iterdir() if f.name.lower().endswith(PICKLE_SUFFIXES))
        if len(pickles) == 1:
            return _read_pickle(pickles[0])
    raise CheckpointError(
        f"{folder}: cannot tell which file to load ({len(indexes)} shard indexes, {len(singles)} safetensors "
        f"files); point to the file itself"
    )


def read_config_json(path: str | os.PathLike) -> Optional[dict]:
    """The `config.json` next to a checkpoint (diffusers/official folders), if any."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    cfg = folder / "config.json"
    if cfg.exists():
        try:
            return json.loads(cfg.read_text())
        except json.JSONDecodeError:
            return None
    return None
