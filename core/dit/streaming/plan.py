"""The streaming plan: which blocks stay on the device, stated in one line before sampling.

Device memory of a streamed DiT = the other parts (embeddings, head: always on the device) + the
blocks kept there + the buffers of the streamed blocks in flight (the running one and `prefetch`
more) + the activations. Given a budget, the plan keeps the most blocks that fit, the first ones in
running order (the copies of the first streamed blocks then overlap the kept blocks' compute).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from .settings import STORAGES

GB = 1e9
# The activation margin's default size: 832x480, 81 frames = 21 x 30 x 52 tokens after the VAE (8x
# space, 4x time) and the 1x2x2 patches; two prepared prompts (positive and negative).
DEFAULT_TOKENS = 21 * 30 * 52
PROMPTS = 2


@dataclass(frozen=True)
class StreamPlan:
    device: str
    storage: str  # a key of STORAGES
    block_bytes: tuple[int, ...]  # each block's bytes on the device while it runs, in running order
    on_device: int  # the first `on_device` blocks (running order) stay on the device
    prefetch: int
    other_bytes: int  # embeddings, head, ...: always on the device
    activation_margin: Optional[int] = None  # None: no budget was given
    budget: Optional[int] = None

    @property
    def blocks(self) -> int:
        return len(self.block_bytes)

    @property
    def streamed(self) -> int:
        return self.blocks - self.on_device

    @property
    def buffer_bytes(self) -> int:
        """Device memory of the streamed blocks in flight: the running one plus `prefetch` more."""
        return _buffer_bytes(self.block_bytes, self.on_device, self.prefetch)

    @property
    def weight_bytes(self) -> int:
        return self.other_bytes + sum(self.block_bytes[: self.on_device]) + self.buffer_bytes

    def describe(self) -> str:
        """The plan in one line, e.g. "30 of 40 blocks on cuda:0, 10 streamed from pinned CPU memory ..."."""
        streamed = (f"{self.streamed} streamed from {STORAGES[self.storage]} (prefetch {self.prefetch})"
                    if self.streamed else "none streamed")
        line = (f"{self.on_device} of {self.blocks} blocks on {self.device}, {streamed}; weights on device "
                f"~{_size(self.weight_bytes)} (blocks {_size(sum(self.block_bytes[:self.on_device]))}, other parts "
                f"{_size(self.other_bytes)}, streaming buffers {_size(self.buffer_bytes)})")
        if self.budget is not None:
            line += f", activation margin {_size(self.activation_margin)}, budget {_size(self.budget)}"
        return line


def plan_streaming(
    block_bytes: Sequence[int], other_bytes: int, *, device: str, storage: str, prefetch: int = 1,
    blocks_on_device: Optional[int] = None, budget: Optional[int] = None, activation_margin: int = 0,
) -> StreamPlan:
    """Keep `blocks_on_device` blocks, or the most that fit in `budget` bytes; neither = all of them.

    A budget that cannot hold the other parts, the margin and the streaming buffers of even zero
    kept blocks is refused with the minimum in bytes.
    """
    block_bytes = tuple(int(b) for b in block_bytes)
    plan = StreamPlan(str(device), storage, block_bytes, len(block_bytes), prefetch, int(other_bytes))
    if blocks_on_device is not None:
        return StreamPlan(**{**plan.__dict__, "on_device": min(blocks_on_device, len(block_bytes))})
    if budget is None:
        return plan
    available = budget - other_bytes - activation_margin
    for kept in range(len(block_bytes), -1, -1):
        if sum(block_bytes[:kept]) + _buffer_bytes(block_bytes, kept, prefetch) <= available:
            return StreamPlan(**{**plan.__dict__, "on_device": kept, "activation_margin": activation_margin,
                                 "budget": budget})
    buffers = _buffer_bytes(block_bytes, 0, prefetch)
    minimum = other_bytes + activation_margin + buffers
    raise ValueError(
        f"a device budget of {budget} bytes ({budget / GB:.2f} GB) cannot run this DiT even with every block "
        f"streamed: the minimum is {minimum} bytes ({minimum / GB:.2f} GB) = other parts {other_bytes / GB:.2f} GB "
        f"+ activation margin {activation_margin / GB:.2f} GB + {min(prefetch + 1, len(block_bytes))} block "
        f"buffer(s) {buffers / GB:.2f} GB (the running block and prefetch={prefetch} more). Give a larger "
        f"budget, a smaller activation_margin (smaller videos need less), or prefetch=0")


def activation_margin(config, compute_dtype: torch.dtype, tokens: int = DEFAULT_TOKENS) -> int:
    """Bytes of activations of one forward at `tokens` latent tokens (batch 1; guidance runs its two
    passes one after the other), plus PROMPTS prepared prompts.

    Per token: the float32 residual stream twice (a block's input and output), four [dim] tensors
    in the compute dtype (self-attention's q, k, v and output, or the FFN's input and output) and
    the FFN hidden [ffn_dim]. A prepared prompt holds keys and values [text_len, dim] per block.
    """
    size = torch.empty((), dtype=compute_dtype).element_size()
    per_token = 2 * config.dim * 4 + 4 * config.dim * size + config.ffn_dim * size
    text_blocks = config.num_layers + len(config.vace_layers or ())
    prompts = PROMPTS * text_blocks * 2 * config.text_len * config.dim * size
    return tokens * per_token + prompts


def _size(nbytes: int) -> str:
    return f"{nbytes / GB:.2f} GB" if nbytes >= GB / 10 else f"{nbytes / 1e6:.1f} MB"


def _buffer_bytes(block_bytes: Sequence[int], kept: int, prefetch: int) -> int:
    streamed = block_bytes[kept:]
    return min(prefetch + 1, len(streamed)) * max(streamed) if streamed else 0
