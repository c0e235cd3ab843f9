"""What the user asks of block streaming: how many blocks stay on the device, how far ahead to copy,
and where the streamed blocks live."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

# Where the streamed blocks' weights live between their turns (their "home"):
#   pinned: a private copy in page-locked CPU memory, so copies to a GPU run asynchronously;
#   cpu:    a private copy in ordinary CPU memory;
#   mmap:   the tensors as loaded, i.e. the checkpoint file's memory map (no private copy at all;
#           the OS pages the file in and out).
STORAGES = {"pinned": "pinned CPU memory", "cpu": "CPU memory", "mmap": "the memory-mapped file"}


@dataclass(frozen=True)
class BlockStreaming:
    """Block streaming of a Wan DiT: `kinema.load_dit(path, device="cuda", streaming=BlockStreaming(...))`.

    blocks_on_device: how many transformer blocks (in running order: main blocks with their VACE /
        face-adapter companions) stay on the device; the others are copied in just before they run
        and released right after. None = as many as `device_budget` allows.
    device_budget: bytes the DiT may use on the device (weights, prefetch buffers and the activation
        margin). None = the device's free memory when streaming is set up (every block on the CPU,
        where streaming only saves memory if asked for with blocks_on_device).
    activation_margin: bytes of the budget kept for activations; None = the estimate of
        `plan.activation_margin` (Wan at 832x480, 81 frames).
    prefetch: streamed blocks copied ahead of the running one (the copy of block i+1 overlaps
        block i's compute); at most prefetch + 1 streamed blocks are on the device at once.
    storage: "pinned", "cpu" or "mmap" (see STORAGES); None = pinned on CUDA, mmap elsewhere.
    """

    blocks_on_device: Optional[int] = None
    device_budget: Optional[int] = None
    activation_margin: Optional[int] = None
    prefetch: int = 1
    storage: Optional[str] = None

    def __post_init__(self):
        if self.blocks_on_device is not None and self.device_budget is not None:
            raise ValueError("give blocks_on_device (a block count) or device_budget (bytes), not both")
        if self.blocks_on_device is not None and self.blocks_on_device < 0:
            raise ValueError(f"blocks_on_device must be >= 0, got {self.blocks_on_device}")
        if self.device_budget is not None and self.device_budget <= 0:
            raise ValueError(f"device_budget is in bytes and must be > 0, got {self.device_budget}")
        if self.activation_margin is not None and self.activation_margin < 0:
            raise ValueError(f"activation_margin is in bytes and must be >= 0, got {self.activation_margin}")
        if self.prefetch < 0:
            raise ValueError(f"prefetch must be >= 0 blocks, got {self.prefetch}")
        if self.storage is not None and self.storage not in STORAGES:
            raise ValueError(f"unknown storage {self.storage!r}; choose one of {list(STORAGES)}")

    def storage_for(self, device: torch.device) -> str:
        """The storage used on `device`; pinned memory exists only beside a CUDA device."""
        storage = self.storage or ("pinned" if device.type == "cuda" else "mmap")
        if storage == "pinned" and device.type != "cuda":
            raise ValueError(f"storage 'pinned' (page-locked memory for asynchronous GPU copies) needs a CUDA "
                             f"device, not {device}; choose 'cpu' or 'mmap'")
        return storage
