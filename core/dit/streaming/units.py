"""What block streaming moves: each transformer block (a "unit"), in the order a forward runs them,
and the tensors of each (parameters, buffers and on-the-fly LoRA adapters).

Streaming works from outside the model, with hooks: a unit is brought in when one of its entry
modules is called and released when its exit module returns. For a plain block both are the block;
a VACE control block also has its projections into and out of the control stream, called by the
model around the block (core/dit/vace.py `_control_step`).

A block's cross-attention key/value projections (TEXT_PROJECTIONS) only ever run in
`CrossAttention.keys_values`, i.e. while a prompt is prepared (once per prompt and run); the block's
forward uses the prepared keys and values. They are therefore a separate part, copied in only
while a prompt is prepared and never kept on the device.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

import torch
import torch.nn as nn

# The CrossAttention submodules `keys_values` reads (and the only ones it reads); see core/dit/blocks.py.
TEXT_PROJECTIONS = ("k", "v", "norm_k", "k_img", "v_img", "norm_k_img")

PARAM, BUFFER, ADAPTERS = "param", "buffer", "adapters"


@dataclass(frozen=True, eq=False)
class Slot:
    """One place a module keeps tensors: a parameter, a buffer, or a LoRALinear's `adapters` tuple
    (frozen dataclasses whose tensor fields are the LoRA's low-rank matrices)."""

    owner: nn.Module
    kind: str
    name: str

    def get(self):
        if self.kind == PARAM:
            return self.owner._parameters[self.name]
        if self.kind == BUFFER:
            return self.owner._buffers[self.name]
        return self.owner.adapters

    def set(self, value) -> None:
        if self.kind == PARAM:
            self.owner._parameters[self.name] = value
        elif self.kind == BUFFER:
            self.owner._buffers[self.name] = value
        else:
            self.owner.adapters = value


@dataclass(frozen=True, eq=False)
class Unit:
    name: str  # e.g. "blocks.3", "vace_blocks.1", "face_adapter.fuser_blocks.0"
    module: nn.Module
    entries: tuple[nn.Module, ...]  # calling any of these needs the unit on the device
    exit: nn.Module  # when this returns, the unit is done for this forward

    def text_modules(self) -> tuple[nn.Module, ...]:
        cross = getattr(self.module, "cross_attn", None)
        return tuple(m for m in (getattr(cross, n, None) for n in TEXT_PROJECTIONS) if m is not None)

    def forward_slots(self) -> list[Slot]:
        return slots(self.module, skip=self.text_modules())

    def text_slots(self) -> list[Slot]:
        return [s for module in self.text_modules() for s in slots(module)]


def running_order(dit: nn.Module) -> list[Unit]:
    """The transformer blocks of `dit` in the order its forward runs them."""
    units = []
    vace_after = {layer: j for j, layer in enumerate(dit.config.vace_layers or ())} if hasattr(dit, "vace_blocks") \
        else {}
    animate = getattr(dit.config, "animate", None) if hasattr(dit, "face_adapter") else None
    for i, block in enumerate(dit.blocks):
        units.append(Unit(f"blocks.{i}", block, (block,), block))
        if i in vace_after:  # VACE: control block j runs right after main block vace_layers[j]
            j = vace_after[i]
            control = dit.vace_blocks[j]
            entries = tuple(m for m in (control.before_proj, control) if m is not None)
            units.append(Unit(f"vace_blocks.{j}", control, entries, control.after_proj))
        if animate is not None and i % animate.face_every == 0:  # Animate: a face block after every k-th
            face = dit.face_adapter.fuser_blocks[i // animate.face_every]
            units.append(Unit(f"face_adapter.fuser_blocks.{i // animate.face_every}", face, (face,), face))
    return units


def other_slots(dit: nn.Module, units: Iterable[Unit]) -> list[Slot]:
    """The tensors outside every unit: embeddings, head, Animate's motion and face encoders."""
    return slots(dit, skip=tuple(u.module for u in units))


def slots(root: nn.Module, skip: Iterable[nn.Module] = ()) -> list[Slot]:
    """Every tensor slot under `root`, leaving out the subtrees of `skip`."""
    skipped = {id(m) for m in skip}
    out: list[Slot] = []

    def visit(module: nn.Module) -> None:
        if id(module) in skipped:
            return
        out.extend(Slot(module, PARAM, name) for name, p in module._parameters.items() if p is not None)
        out.extend(Slot(module, BUFFER, name) for name, b in module._buffers.items() if b is not None)
        if isinstance(getattr(module, "adapters", None), tuple) and module.adapters:
            out.append(Slot(module, ADAPTERS, "adapters"))
        for child in module._modules.values():
            if child is not None:
                visit(child)

    visit(root)
    return out


def tensors_in(value) -> Iterator[torch.Tensor]:
    """The tensors a slot's value holds: itself, or every tensor field of the adapters."""
    if isinstance(value, torch.Tensor):
        yield value
        return
    for adapter in value:
        for field in dataclasses.fields(adapter):
            t = getattr(adapter, field.name)
            if isinstance(t, torch.Tensor):
                yield t


def with_tensors(value, tensors: Iterator[torch.Tensor]):
    """`value` with its tensors replaced, in `tensors_in` order (parameters stay parameters)."""
    if isinstance(value, nn.Parameter):
        return nn.Parameter(next(tensors), requires_grad=False)
    if isinstance(value, torch.Tensor):
        return next(tensors)
    return tuple(dataclasses.replace(adapter, **{
        f.name: next(tensors) for f in dataclasses.fields(adapter) if isinstance(getattr(adapter, f.name), torch.Tensor)
    }) for adapter in value)


def nbytes(slot_list: Iterable[Slot]) -> int:
    return sum(t.numel() * t.element_size() for s in slot_list for t in tensors_in(s.get()))


def unit_device(unit_slots: list[Slot]) -> Optional[torch.device]:
    for s in unit_slots:
        for t in tensors_in(s.get()):
            return t.device
    return None
