"""BlockStreamer: runs a Wan DiT with only some transformer blocks on the compute device.

Hooks on the model (no change to its code):
- the model's forward pre-hook makes it the active model of its device (`onload`) and starts the
  copies of the first streamed blocks; its forward hook (also on errors) releases leftovers;
- each block's entry pre-hook installs the block (waiting for its copy, or copying it now) and starts
  the copies of the next `prefetch` streamed blocks in running order; its exit hook releases it;
- `prepare_context` makes the model active first, and each block's `cross_attn.keys_values` brings
  in that block's text projections for the call.

Two models on one device (Wan2.2 A14B's experts): a device has one active streamed model. Running
(or preparing a prompt for) another streamed model offloads the active one's kept blocks to their
homes: the switch costs one copy of the kept blocks, never a read of the checkpoint again. The
other parts (embeddings, head: ~2% of a model) stay on the device, so `next(dit.parameters())`
still says where the model runs.

Copies of the model (`copy.deepcopy`, as `apply_loras` makes) share every tensor with it (a copy
must not double the weights) and get their own streamer.
"""
from __future__ import annotations

import copy
import logging
import weakref
from typing import Callable, Optional

import torch
import torch.nn as nn

from . import copies
from .copies import Loaded
from .plan import StreamPlan
from .units import Unit, other_slots, running_order, slots, tensors_in

log = logging.getLogger(__name__)

# device -> the streamer whose kept blocks are on it
_ACTIVE: dict[str, "weakref.ReferenceType[BlockStreamer]"] = {}


class BlockStreamer:
    def __init__(self, dit: nn.Module, plan: StreamPlan, device: torch.device):
        self.dit, self.plan, self.device = dit, plan, device
        self.units: list[Unit] = running_order(dit)
        self.onloads = 0  # times the kept blocks were copied to the device (setup, then each expert switch)
        self.copies_in = 0  # streamed block copies started
        self._loaded: dict[int, Loaded] = {}  # unit index -> its forward part, on the device or on its way
        self._other: Optional[Loaded] = None
        self._onloaded = False
        self._copy_stream: Optional[torch.cuda.Stream] = None

    # --- state ---------------------------------------------------------------------------------

    def is_kept(self, index: int) -> bool:
        return index < self.plan.on_device

    @property
    def onloaded(self) -> bool:
        return self._onloaded

    def loaded_units(self) -> list[str]:
        """Names of the units whose forward part is on the device (or being copied there) now."""
        return [self.units[i].name for i in sorted(self._loaded)]

    def device_bytes(self) -> int:
        """Bytes of block copies on the device now (packed buffers; the other parts not counted)."""
        return sum(loaded.nbytes for loaded in self._loaded.values())

    # --- whole model ---------------------------------------------------------------------------

    def attach(self) -> None:
        """Move the other parts to the device and install the hooks; then `onload`."""
        self._other = copies.move(other_slots(self.dit, self.units), self.device)
        self.dit.register_forward_pre_hook(_ModelEntry(self))
        self.dit.register_forward_hook(_ModelExit(self), always_call=True)
        for index, unit in enumerate(self.units):
            for entry in unit.entries:
                entry.register_forward_pre_hook(_UnitEntry(self, index))
            unit.exit.register_forward_hook(_UnitExit(self, index))
            cross = getattr(unit.module, "cross_attn", None)
            if cross is not None:
                cross.keys_values = _KeysValues(self, index, cross)
        self.dit.prepare_context = _PrepareContext(self, self.dit)
        self.onload()

    def onload(self) -> None:
        """Make this model the active one of its device: the active other model's kept blocks go home,
        this one's come in (one copy each; nothing when already active)."""
        key = _device_key(self.device)
        active = _ACTIVE.get(key)
        other = active() if active is not None else None
        if other is not None and other is not self:
            other.offload()
        if not self._onloaded:
            for index in range(self.plan.on_device):
                self._install(index)
            self._onloaded = True
            self.onloads += 1
        _ACTIVE[key] = weakref.ref(self)

    def offload(self) -> None:
        """Send every block copy home (the kept blocks too); the other parts stay on the device."""
        for index in list(self._loaded):
            self._release(index)
        self._onloaded = False
        key = _device_key(self.device)
        active = _ACTIVE.get(key)
        if active is not None and active() is self:
            del _ACTIVE[key]

    # --- per unit ------------------------------------------------------------------------------

    def enter(self, index: int) -> None:
        self._install(index)
        self._prefetch(after=index)

    def exit(self, index: int) -> None:
        if not self.is_kept(index):
            self._release(index)

    def model_entry(self) -> None:
        if not self._onloaded or _active(self.device) is not self:
            self.onload()
        self._prefetch(after=-1)

    def model_exit(self) -> None:
        """After a forward, and after an error in one: no streamed block stays on the device."""
        for index in [i for i in self._loaded if not self.is_kept(i)]:
            self._release(index)

    def with_text_part(self, index: int, call: Callable[[], object]):
        """Run `call` (the block's keys_values) with the block's text projections on the device."""
        unit = self.units[index]
        loaded = copies.start_copy(unit.text_slots(), self.device)
        copies.install(loaded, self.device)
        try:
            return call()
        finally:
            copies.release(loaded, unit.text_slots(), self.device)

    def _install(self, index: int) -> None:
        loaded = self._loaded.get(index)
        if loaded is None:
            loaded = self._start(index, stream=None)
        if not loaded.installed:
            copies.install(loaded, self.device)

    def _start(self, index: int, stream) -> Loaded:
        loaded = copies.start_copy(self.units[index].forward_slots(), self.device, stream)
        self._loaded[index] = loaded
        if not self.is_kept(index):
            self.copies_in += 1
        return loaded

    def _prefetch(self, after: int) -> None:
        """Start the copies of the next `prefetch` streamed units after position `after`."""
        upcoming = [i for i in range(max(after + 1, self.plan.on_device), len(self.units))][: self.plan.prefetch]
        for index in upcoming:
            if index not in self._loaded:
                self._start(index, self._side_stream())

    def _release(self, index: int) -> None:
        loaded = self._loaded.pop(index, None)
        if loaded is not None:
            copies.release(loaded, self.units[index].forward_slots(), self.device)

    def _side_stream(self) -> Optional[torch.cuda.Stream]:
        if self.device.type != "cuda":
            return None  # on the CPU a prefetch is a copy made now
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self.device)
        return self._copy_stream

    # --- copies of the model ---------------------------------------------------------------------

    def __deepcopy__(self, memo: dict) -> "BlockStreamer":
        # Share every tensor (homes, device copies, buffers) and adapter tuple: a copy of the model
        # must not duplicate weights. The model's hooks lead a deepcopy here before its modules, which
        # are then copied through `memo` like the rest of the model.
        values = [s.get() for s in slots(self.dit)]
        for loaded in [*self._loaded.values(), *([self._other] if self._other is not None else [])]:
            values += [value for _, home, installed in loaded.records for value in (home, installed)]
            if loaded.buffer is not None:
                values.append(loaded.buffer)
        for value in values:
            memo.setdefault(id(value), value)
            for t in tensors_in(value):
                memo.setdefault(id(t), t)
        new = object.__new__(BlockStreamer)
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            new.__dict__[name] = None if name == "_copy_stream" else copy.deepcopy(value, memo)
        return new


def _active(device: torch.device) -> Optional[BlockStreamer]:
    ref = _ACTIVE.get(_device_key(device))
    return ref() if ref is not None else None


def _device_key(device: torch.device) -> str:
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


# Hooks are small objects (not closures) so that copy.deepcopy of the model rebinds them to the copy.

class _ModelEntry:
    def __init__(self, streamer: BlockStreamer):
        self.streamer = streamer

    def __call__(self, module, args):
        self.streamer.model_entry()


class _ModelExit:
    def __init__(self, streamer: BlockStreamer):
        self.streamer = streamer

    def __call__(self, module, args, output):
        self.streamer.model_exit()


class _UnitEntry:
    def __init__(self, streamer: BlockStreamer, index: int):
        self.streamer, self.index = streamer, index

    def __call__(self, module, args):
        self.streamer.enter(self.index)


class _UnitExit:
    def __init__(self, streamer: BlockStreamer, index: int):
        self.streamer, self.index = streamer, index

    def __call__(self, module, args, output):
        self.streamer.exit(self.index)


class _KeysValues:
    """Stands in for `cross_attn.keys_values` (an instance attribute shadowing the method)."""

    def __init__(self, streamer: BlockStreamer, index: int, cross_attn: nn.Module):
        self.streamer, self.index, self.cross_attn = streamer, index, cross_attn

    def __call__(self, text, image):
        method = type(self.cross_attn).keys_values
        return self.streamer.with_text_part(self.index, lambda: method(self.cross_attn, text, image))


class _PrepareContext:
    """Stands in for `dit.prepare_context`: the model becomes its device's active one first."""

    def __init__(self, streamer: BlockStreamer, dit: nn.Module):
        self.streamer, self.dit = streamer, dit

    def __call__(self, *args, **kwargs):
        if not self.streamer.onloaded or _active(self.streamer.device) is not self.streamer:
            self.streamer.onload()
        return type(self.dit).prepare_context(self.dit, *args, **kwargs)
