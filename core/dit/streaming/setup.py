"""Turning a loaded DiT into a streamed one: `stream_blocks(dit, BlockStreaming(...), "cuda")`, or
`load_streamed_dit(path, BlockStreaming(...), device="cuda")` straight from a checkpoint file."""
from __future__ import annotations

import inspect
import logging
import os
from typing import Optional, Union

import torch
import torch.nn as nn

from ...layers import fp8_matmul_unsupported
from ..loader import FP8_FAST, _use_fp8_matmul, load_dit
from . import copies
from .plan import StreamPlan, activation_margin, plan_streaming
from .settings import BlockStreaming
from .streamer import BlockStreamer, _active
from .units import Unit, nbytes, other_slots, running_order, tensors_in, with_tensors

log = logging.getLogger(__name__)

_ATTRIBUTE = "_block_streamer"


def stream_blocks(dit: nn.Module, settings: BlockStreaming,
                  device: Union[str, torch.device, None] = None) -> BlockStreamer:
    """Run `dit` on `device` (default: CUDA if there is one, else the CPU) with only the planned blocks
    kept there; logs the plan in one line and returns the streamer (also `streamer_of(dit)`).

    The DiT should be on the CPU, as loaded: its tensors there are the homes of the blocks (with
    storage "mmap", the memory-mapped file itself). The other parts move to `device` now.
    """
    if streamer_of(dit) is not None:
        raise ValueError("this DiT is already streamed; load it again to stream it with other settings")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    storage = settings.storage_for(device)
    units = running_order(dit)
    _homes_on_cpu(units, storage)
    plan = _plan(dit, units, settings, device, storage)
    log.info("%s", plan.describe())
    if storage != "mmap":
        for index, unit in enumerate(units):
            if index >= plan.on_device:
                copies.private_homes(unit.forward_slots(), pinned=storage == "pinned")
            copies.private_homes(unit.text_slots(), pinned=storage == "pinned")
    streamer = BlockStreamer(dit, plan, device)
    setattr(dit, _ATTRIBUTE, streamer)
    streamer.attach()
    return streamer


def streamer_of(dit: nn.Module) -> Optional[BlockStreamer]:
    """The streamer of a streamed DiT (or of a copy of one, e.g. with LoRAs applied), else None."""
    return dit.__dict__.get(_ATTRIBUTE)


def load_streamed_dit(path: Union[str, os.PathLike], streaming: BlockStreaming, *args, **options) -> nn.Module:
    """`core.dit.load_dit(path, ...)` (same arguments), streamed on its `device`: the file is read on
    the CPU, where the weights stay memory-mapped, and `stream_blocks` moves what the plan keeps."""
    bound = inspect.signature(load_dit).bind(path, *args, **options)
    bound.apply_defaults()
    device = torch.device(bound.arguments["device"])
    if bound.arguments["compute_dtype"] is None:
        # the loader's default for that device (it would pick float32 for the CPU it reads on)
        bound.arguments["compute_dtype"] = torch.float32 if device.type == "cpu" else torch.bfloat16
    fp8_fast = bound.arguments["dtype"] == FP8_FAST
    if fp8_fast:
        reason = fp8_matmul_unsupported(device)
        if reason is not None:
            raise ValueError(f"weight dtype {FP8_FAST!r} runs fp8 matmuls: {reason}. Choose the file's dtype instead")
        bound.arguments["dtype"] = None  # read as stored; the fp8 switch is made on the CPU below
    bound.arguments["device"] = "cpu"
    dit = load_dit(*bound.args, **bound.kwargs)
    if fp8_fast:
        _use_fp8_matmul(dit, torch.device("cpu"))  # weights not in e4m3fn yet are quantised on the CPU
    stream_blocks(dit, streaming, device)
    return dit


def _plan(dit: nn.Module, units: list[Unit], settings: BlockStreaming, device: torch.device,
          storage: str) -> StreamPlan:
    block_bytes = [copies.packed_bytes([t for s in u.forward_slots() for t in tensors_in(s.get())]) for u in units]
    other = nbytes(other_slots(dit, units))
    budget = settings.device_budget
    if budget is None and settings.blocks_on_device is None and device.type == "cuda":
        budget = _free_bytes(device)
    margin = settings.activation_margin
    if margin is None:
        margin = activation_margin(dit.config, dit.compute_dtype) if budget is not None else 0
    return plan_streaming(block_bytes, other, device=str(device), storage=storage, prefetch=settings.prefetch,
                          blocks_on_device=settings.blocks_on_device, budget=budget, activation_margin=margin)


def _free_bytes(device: torch.device) -> int:
    """What this model may use on a CUDA device: its free memory, memory torch holds unused, and the
    blocks of the device's active streamed model (offloaded when this one runs)."""
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    active = _active(device)
    return free + (active.device_bytes() if active is not None else 0)


def _homes_on_cpu(units: list[Unit], storage: str) -> None:
    """The blocks' tensors are their homes: they must be on the CPU (private copies made for cpu/pinned)."""
    elsewhere = [s for u in units for s in u.forward_slots() + u.text_slots()
                 if any(t.device.type != "cpu" for t in tensors_in(s.get()))]
    if elsewhere and storage == "mmap":
        raise ValueError("storage 'mmap' streams the weights as loaded from the file, but this DiT is on "
                         f"{next(tensors_in(elsewhere[0].get())).device}; load it on the CPU (kinema.load_dit(..., "
                         "streaming=...) does) or choose storage 'cpu' or 'pinned'")
    for s in elsewhere:
        value = s.get()
        s.set(with_tensors(value, (t.to("cpu") for t in tensors_in(value))))
