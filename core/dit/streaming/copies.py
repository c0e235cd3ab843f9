"""Copy-in and release of a unit's tensors: the one mechanism behind every device (CUDA and CPU alike).

Copy-in packs the unit's tensors into ONE fresh buffer on the compute device (views of it replace
the module's tensors) and release puts the originals ("homes") back and drops the buffer. One
allocation per unit keeps the allocator simple: on CUDA the caching allocator hands the same
block-sized segments back for the next block; on the CPU a buffer this size is its own memory
map, which the C library returns to the OS on release (no heap growth).

On CUDA a copy may run on a side stream (prefetch): the side stream first waits for the compute
stream (the new buffer may reuse memory that stream was still reading), and the compute stream
waits for the copy's event before the unit is installed. Sources in pinned memory make these copies
asynchronous; from pageable memory they still work, only without overlap.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch

from .units import Slot, tensors_in, with_tensors

ALIGN = 256  # bytes; every tensor of a packed buffer starts at a multiple (any dtype's alignment, CUDA-friendly)
_CPU = torch.device("cpu")


@dataclass(eq=False)
class Loaded:
    """Tensors installed in place of their homes; release() undoes it."""

    records: list[tuple[Slot, object, object]]  # (slot, home value, installed value)
    buffer: Optional[torch.Tensor]  # the packed device buffer the installed tensors view (kept alive by them)
    ready: Optional[torch.cuda.Event] = None  # the side-stream copy's event, until installed
    installed: bool = False
    nbytes: int = field(default=0)


def start_copy(slot_list: Sequence[Slot], device: torch.device, stream: Optional[torch.cuda.Stream] = None) -> Loaded:
    """Copy the slots' tensors into one new buffer on `device` (on `stream` if given, else now).
    Tensors already on a non-CPU `device` (e.g. made there by a LoRA) are kept as they are."""
    values = [s.get() for s in slot_list]
    sources = [t for v in values for t in tensors_in(v) if _needs_copy(t, device)]
    buffer, views = _pack(sources, device, pinned=False)
    ready = None
    if stream is not None and sources:
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for view, source in zip(views, sources):
                view.copy_(source, non_blocking=True)
            ready = torch.cuda.Event()
            ready.record(stream)
    else:
        for view, source in zip(views, sources):
            view.copy_(source, non_blocking=device.type == "cuda")
    fresh = iter(views)
    records = []
    for s, value in zip(slot_list, values):
        tensors = [next(fresh) if _needs_copy(t, device) else t for t in tensors_in(value)]
        records.append((s, value, with_tensors(value, iter(tensors))))
    return Loaded(records, buffer, ready, nbytes=0 if buffer is None else buffer.numel())


def install(loaded: Loaded, device: torch.device) -> None:
    """Point the modules at the copies (after the compute stream has waited for a side-stream copy)."""
    _wait(loaded, device)
    for s, _, installed in loaded.records:
        s.set(installed)
    loaded.installed = True


def release(loaded: Loaded, slots_now: Sequence[Slot], device: torch.device) -> None:
    """Put the homes back. A tensor replaced while installed (a LoRA merged into a kept block, an adapter
    added) is the new truth: if it is on an accelerator, a CPU copy of it becomes its home."""
    _wait(loaded, device)  # never free a buffer a side-stream copy may still write
    recorded = {(id(s.owner), s.kind, s.name): (home, installed) for s, home, installed in loaded.records}
    for s in slots_now:
        value = s.get()
        home, installed = recorded.get((id(s.owner), s.kind, s.name), (None, None))
        if loaded.installed and installed is not None and value is installed:
            s.set(home)
        elif any(t.device.type != "cpu" for t in tensors_in(value)):
            s.set(with_tensors(value, (t.to(_CPU) for t in tensors_in(value))))
    loaded.records, loaded.buffer = [], None


def move(slot_list: Sequence[Slot], device: torch.device) -> Loaded:
    """Per-tensor `.to(device)` of the slots not on `device` yet (the always-resident other parts:
    on the CPU nothing moves)."""
    records = []
    for s in slot_list:
        value = s.get()
        if any(t.device != device for t in tensors_in(value)):
            with torch.inference_mode(False):
                records.append((s, value, with_tensors(value, (t.to(device) for t in tensors_in(value)))))
    loaded = Loaded(records, None)
    install(loaded, device)
    return loaded


def private_homes(slot_list: Sequence[Slot], pinned: bool) -> int:
    """Replace the slots' tensors by views of one private CPU buffer (page-locked if `pinned`); returns its bytes."""
    values = [s.get() for s in slot_list]
    sources = [t for v in values for t in tensors_in(v)]
    buffer, views = _pack(sources, _CPU, pinned)
    for view, source in zip(views, sources):
        view.copy_(source)
    fresh = iter(views)
    for s, value in zip(slot_list, values):
        s.set(with_tensors(value, fresh))
    return 0 if buffer is None else buffer.numel()


def packed_bytes(tensors) -> int:
    """Bytes of one packed buffer holding `tensors` (with alignment)."""
    return sum(_aligned(t.numel() * t.element_size()) for t in tensors)


def _needs_copy(t: torch.Tensor, device: torch.device) -> bool:
    # Homes live on the CPU. On the CPU as compute device every tensor is copied too (the private buffers
    # are what "on the device" means there); on an accelerator, tensors already there stay.
    return t.device.type == "cpu" or t.device != device


def _pack(sources: Sequence[torch.Tensor], device: torch.device, pinned: bool):
    """One uint8 buffer on `device` and a typed view of it per source (same shape and dtype)."""
    if not sources:
        return None, []
    with torch.inference_mode(False):  # plain tensors: the model may later run under autograd
        buffer = torch.empty(packed_bytes(sources), dtype=torch.uint8, device=device, pin_memory=pinned)
        views, offset = [], 0
        for t in sources:
            size = t.numel() * t.element_size()
            views.append(buffer[offset:offset + size].view(t.dtype).view(t.shape))
            offset += _aligned(size)
    return buffer, views


def _aligned(size: int) -> int:
    return -(-size // ALIGN) * ALIGN


def _wait(loaded: Loaded, device: torch.device) -> None:
    if loaded.ready is not None:
        torch.cuda.current_stream(device).wait_event(loaded.ready)
        loaded.ready = None
