"""umT5 encoder hyper-parameters, read from the tensor shapes of a checkpoint."""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..checkpoints.io import CheckpointError

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


@dataclass(frozen=True)
class UMT5Config:
    vocab_size: int
    d_model: int
    num_heads: int
    d_kv: int  # per-head width; umT5-XXL: 64 (inner 4096 = 64 heads x 64)
    d_ff: int
    num_layers: int
    num_buckets: int = 32
    max_distance: int = 128  # not stored in any file; every umT5 uses 128
    eps: float = 1e-6

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.d_kv

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], source: str) -> "UMT5Config":
        """Infers the config from canonical (official Wan) key names."""
        def shape(key: str) -> torch.Size:
            if key not in tensors:
                raise CheckpointError(f"{source}: umT5 tensor {key!r} is missing; the file is incomplete")
            return tensors[key].shape

        vocab_size, d_model = shape("token_embedding.weight")
        layers = sorted({int(m.group(1)) for k in tensors if (m := _BLOCK_KEY.match(k))})
        if not layers or layers != list(range(len(layers))):
            raise CheckpointError(f"{source}: umT5 blocks are missing or not numbered 0..N-1 (found {layers[:8]}...)")
        with_bias = [i for i in layers if f"blocks.{i}.pos_embedding.embedding.weight" in tensors]
        if with_bias != layers:
            raise CheckpointError(
                f"{source}: only blocks {with_bias} have a relative position bias; this is a T5 v1.1 encoder "
                f"(shared bias, e.g. the t5xxl used by Flux/SD3), not umT5. Wan needs umT5-XXL "
                f"(umt5_xxl_fp16.safetensors or models_t5_umt5-xxl-enc-bf16.pth)"
            )
        num_buckets, num_heads = shape("blocks.0.pos_embedding.embedding.weight")
        inner_dim = shape("blocks.0.attn.q.weight")[0]
        if inner_dim % num_heads:
            raise CheckpointError(f"{source}: attention width {inner_dim} is not a multiple of {num_heads} heads")
        return cls(
            vocab_size=vocab_size,
            d_model=d_model,
            num_heads=num_heads,
            d_kv=inner_dim // num_heads,
            d_ff=shape("blocks.0.ffn.fc1.weight")[0],
            num_layers=len(layers),
            num_buckets=num_buckets,
        )


# The encoder every Wan 2.x model was trained with (5,680,910,336 parameters).
UMT5_XXL = UMT5Config(vocab_size=256384, d_model=4096, num_heads=64, d_kv=64, d_ff=10240, num_layers=24)
