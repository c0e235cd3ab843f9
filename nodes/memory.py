"""Device memory of Kinema's models, in ComfyUI's terms: what each model takes on the compute device, how
it gets there and how it leaves, and how many DiT blocks stay resident.

A model's *residency* moves it between its home (CPU memory or the memory-mapped checkpoint) and the
compute device. `host.manage` wraps it for ComfyUI's model manager (a ModelPatcher), so `/free`,
eviction for other models and --lowvram / --novram act on Kinema's models like on native ones.
Standalone, the same residencies are used directly.

Every model is brought onto the device right before it runs (a hook on the DiT's forward and
prompt preparation; a wrapper around the text encoder's and the VAE's entry points) and the text
encoder and VAE leave the device again right after.
"""
from __future__ import annotations

import functools
import logging
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..core.dit.streaming import BlockStreaming, streamer_of
from ..core.dit.streaming import copies
from ..core.dit.streaming.units import nbytes, other_slots, slots
from . import host

log = logging.getLogger("kinema")

# Kept-block count meaning "every block" (the planner caps a count at the model's block count).
ALL_BLOCKS = 1 << 30
_HANDLE = "_kinema_memory"  # module attribute: the model's handle for the manager (see `handle_of`)


# ------------------------------------------------------------------------------------ the policy
def dit_streaming(memory: host.DeviceMemory, blocks_on_device: int = -1) -> Optional[BlockStreaming]:
    """How a DiT is placed on `memory.device`: None = whole, as loaded (the CPU, where weights already are),
    else block streaming with the kept blocks set by the user (blocks_on_device >= 0) or by ComfyUI:

    - novram: no block kept, every block streamed;
    - highvram: every block kept (streamed models still take turns: only the running expert is there);
    - normal / lowvram: as many as ComfyUI's free-memory estimate, less --reserve-vram, holds.
    On the CPU (--cpu) streaming only happens when asked for (blocks_on_device, --lowvram, --novram).
    """
    if blocks_on_device >= 0:
        return BlockStreaming(blocks_on_device=blocks_on_device)
    if memory.mode == "novram":
        return BlockStreaming(blocks_on_device=0)
    if memory.device.type == "cpu" and memory.mode != "lowvram":
        return None
    if memory.mode == "highvram":
        return BlockStreaming(blocks_on_device=ALL_BLOCKS)
    return BlockStreaming(device_budget=max(1, memory.free_bytes - memory.reserved_bytes))


# -------------------------------------------------------------------------------- residencies
class ModuleResidency:
    """A whole module that is either on the device or at home. Homes stay the module's own CPU tensors
    (memory-mapped as loaded), so leaving the device costs no copy and no private memory.

    On the CPU as compute device nothing moves; loaded/unloaded is then only ComfyUI's bookkeeping.
    """

    def __init__(self, module: nn.Module, device: torch.device):
        self.module, self.device = module, torch.device(device)
        self._size = nbytes(slots(module))
        self._on_device: Optional[copies.Loaded] = None
        self._loaded = False

    def size(self) -> int:
        return self._size

    def loaded(self) -> int:
        return self._size if self._loaded else 0

    def is_loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        if self._loaded:
            return
        # copies.move installs the copies only once all exist: an error (out of memory, an interrupt)
        # leaves the module wholly at home.
        self._on_device = copies.move(slots(self.module), self.device)
        self._loaded = True

    def unload(self) -> None:
        if self._on_device is not None:
            copies.release(self._on_device, slots(self.module), self.device)
            self._on_device = None
        self._loaded = False

    def __deepcopy__(self, memo):
        return None  # a copy of the model (LoRAs) gets its own residency on first use (`handle_of`)


class StreamedResidency:
    """A block-streamed DiT: on the device = its kept blocks and its other parts (embeddings, head);
    the streamed blocks come and go during a forward on their own (core/dit/streaming)."""

    def __init__(self, dit: nn.Module):
        self.dit = self.module = dit
        self.streamer = streamer_of(dit)
        self.device = self.streamer.device
        self._other_bytes = self.streamer.plan.other_bytes
        self._parked = False  # other parts sent home (by an unload)

    def size(self) -> int:
        return self.streamer.plan.weight_bytes

    def loaded(self) -> int:
        return (0 if self._parked else self._other_bytes) + self.streamer.device_bytes()

    def is_loaded(self) -> bool:
        return not self._parked and self.streamer.onloaded

    def load(self) -> None:
        try:
            if self._parked:
                # the streamer keeps the other parts' device copies and their homes (see stream_blocks)
                self.streamer._other = copies.move(other_slots(self.dit, self.streamer.units), self.device)
                self._parked = False
            self.streamer.onload()  # also sends the device's other streamed model (the other expert) home
        except BaseException:
            self.unload()  # an interrupt or out-of-memory mid-way leaves nothing half-moved
            raise

    def unload(self) -> None:
        self.streamer.offload()
        other = self.streamer._other
        if not self._parked and other is not None and other.records:  # on the CPU nothing was moved
            copies.release(other, other_slots(self.dit, self.streamer.units), self.device)
        self._parked = True

    def __deepcopy__(self, memo):
        return None  # a copy of the model (LoRAs) gets its own residency on first use (`handle_of`)


# ------------------------------------------------------------------------------ managed models
def handle_of(module: nn.Module):
    """The model's handle for the memory manager, made on first use (a copy of a managed model, e.g. with
    LoRAs applied, gets its own)."""
    handle = module.__dict__.get(_HANDLE)
    if handle is None:
        residency = StreamedResidency(module) if streamer_of(module) is not None else \
            ModuleResidency(module, _device_of(module))
        handle = host.manage(residency, getattr(module, "_kinema_name", type(module).__name__))
        module.__dict__[_HANDLE] = handle
    return handle


def manage_dit(dit: nn.Module, name: str) -> nn.Module:
    """Registers a loaded DiT (whole or streamed) with the memory manager and loads it through it before
    each forward and prompt preparation."""
    dit.__dict__["_kinema_name"] = name
    dit.register_forward_pre_hook(_BeforeUse(dit), prepend=True)
    dit.__dict__["prepare_context"] = _Prepare(dit, dit.__dict__.get("prepare_context"))
    host.load(handle_of(dit))
    return dit


def manage_text_encoder(encoder, name: str, device: torch.device):
    """The text encoder (loaded on the CPU) runs on `device` for each encode and leaves it after."""
    _manage_module(encoder.model, name, device)
    encoder.encode_ids = _on_device_for_call(encoder.model, encoder.encode_ids)
    return encoder


def manage_vae(vae, name: str, device: torch.device):
    """The VAE (loaded on the CPU) runs on `device` for each encode or decode and leaves it after."""
    _manage_module(vae.network, name, device)
    vae.encode = _on_device_for_call(vae.network, vae.encode)
    vae.iter_decode = _on_device_for_generator(vae.network, vae.iter_decode)
    return vae


def _manage_module(module: nn.Module, name: str, device: torch.device) -> None:
    module.__dict__["_kinema_name"] = name
    module.__dict__[_HANDLE] = host.manage(ModuleResidency(module, device), name)


def _on_device_for_call(module: nn.Module, method: Callable) -> Callable:
    @functools.wraps(method)
    def call(*args, **kwargs):
        handle = handle_of(module)
        host.load(handle)
        try:
            return method(*args, **kwargs)
        finally:
            host.leave_device(handle)
    return call


def _on_device_for_generator(module: nn.Module, method: Callable) -> Callable:
    @functools.wraps(method)
    def generate(*args, **kwargs):
        handle = handle_of(module)
        host.load(handle)
        try:
            yield from method(*args, **kwargs)
        finally:
            host.leave_device(handle)
    return generate


def _device_of(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    return torch.device("cpu")


# Small objects rather than closures, so that copy.deepcopy of the model (LoRAs) rebinds them to the copy.
class _BeforeUse:
    def __init__(self, module: nn.Module):
        self.module = module

    def __call__(self, module, args):
        host.load(handle_of(self.module))


class _Prepare:
    """Stands in for `dit.prepare_context` (or the streamer's stand-in): the model is loaded first."""

    def __init__(self, module: nn.Module, inner: Optional[Callable]):
        self.module, self.inner = module, inner

    def __call__(self, *args, **kwargs):
        host.load(handle_of(self.module))
        if self.inner is not None:
            return self.inner(*args, **kwargs)
        return type(self.module).prepare_context(self.module, *args, **kwargs)
