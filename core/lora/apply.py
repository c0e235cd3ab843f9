"""Applying LoRAs to a WanDiT: merged into the weights, or on the fly beside untouched weights.

Both return a NEW DiT and leave the given one as it was, because ComfyUI (and any caller
chaining LoRAs) keeps using the base model: the copy shares every tensor the LoRAs do not
touch. Merged: each patched Linear gets a new weight W + sum(strength * delta) (fp8 weights
are dequantised, patched and requantised with a fresh per-tensor scale); it runs at base
speed. On the fly: each patched Linear is wrapped in `LoRALinear`, which adds the low-rank
deltas per call, so fp8 (or shared) base weights stay as they are and LoRAs stack by
appending adapters. Small non-Linear tensors (norms, modulation tables, the patch embedding)
take their full `.diff` patches as new tensors in both modes. GGUF-quantised Linears take LoRAs on
the fly only: their blocks cannot hold a patched weight without requantising it.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.io import CheckpointError
from ..checkpoints.quant import FP8_DTYPES
from ..layers import Linear, cast_like
from .loader import LoRA, LowRank

MODES = ("auto", "merge", "on_the_fly")
log = logging.getLogger("kinema")


@dataclass(frozen=True)
class Adapter:
    """One LoRA's patch of one Linear, strength folded in; tensors in the DiT's compute dtype."""

    down: Optional[torch.Tensor] = None  # [r, in]
    up: Optional[torch.Tensor] = None  # [out, r], times strength * alpha / rank
    weight_diff: Optional[torch.Tensor] = None  # [out, in], times strength
    bias: Optional[torch.Tensor] = None  # [out] total bias delta

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # [..., in] -> [..., out]
        out = 0
        if self.down is not None:
            out = F.linear(F.linear(x, cast_like(self.down, x)), cast_like(self.up, x))
        if self.weight_diff is not None:
            out = out + F.linear(x, cast_like(self.weight_diff, x))
        if self.bias is not None:
            out = out + cast_like(self.bias, x)
        return out


class LoRALinear(nn.Module):
    """A Linear plus LoRA adapters evaluated per call: y = base(x) + sum(adapter(x)).

    Adapters are an immutable tuple so a chained copy can extend it without touching the
    model it came from; they are not parameters (not in the state dict, never trained).
    """

    def __init__(self, base: Linear, adapters: tuple[Adapter, ...]):
        super().__init__()
        self.base = base
        self.adapters = adapters

    @property
    def weight(self) -> torch.Tensor:  # the base weight, so shape checks see through the wrapper
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        for adapter in self.adapters:
            y = y + adapter(x)
        return y


def apply_loras(dit: nn.Module, loras: Sequence[tuple[LoRA, float]], mode: str = "auto") -> nn.Module:
    """A copy of `dit` with each (lora, strength) applied; `dit` itself is left unchanged.

    As native ComfyUI, every patch whose layer this DiT has is applied and the others are skipped
    and logged (`fit_lora` names them); a LoRA whose layers clash in shape, or of which nothing fits,
    is refused.

    mode "auto": on the fly when the DiT holds fp8 weights (a LoRA delta is small next to the
    weight, and requantising to fp8's 3 mantissa bits would round much of it away), else merged.
    """
    if mode not in MODES:
        raise ValueError(f"unknown LoRA mode {mode!r}; choose 'auto', 'merge' (fastest) or 'on_the_fly' "
                         "(keeps fp8 weights exact)")
    gguf = _gguf_quantised(dit)
    if mode == "auto":
        mode = "on_the_fly" if gguf or any(p.dtype in FP8_DTYPES for p in dit.parameters()) else "merge"
    if mode == "merge" and gguf:
        raise ValueError("this DiT was loaded from a GGUF file: its weights stay quantised, so LoRAs apply on the "
                         "fly; choose mode 'auto' or 'on_the_fly'")
    fits = [fit_lora(dit, lora) for lora, _ in loras]
    for fit in fits:
        if fit.skipped:
            log.warning("Kinema: %s", fit.summary())
    loras = [(fit.lora, strength) for fit, (_, strength) in zip(fits, loras)]
    out = _shared_copy(dit)
    for lora, strength in loras:
        if strength == 0:
            continue
        linear_targets = set(lora.low_rank)
        for name, diff in lora.diffs.items():
            owner = name.rpartition(".")[0]
            if _is_linear(out.get_submodule(owner)):
                linear_targets.add(owner)  # folded into that layer's adapter / merged weight
            else:
                _add_to_tensor(out, name, float(strength) * diff)
        for module_name in sorted(linear_targets):
            module = out.get_submodule(module_name)
            adapter = _adapter(lora, module_name, float(strength), _base(module).weight.device, out.compute_dtype)
            if mode == "merge":
                _merge(_base(module), adapter)
            else:
                _attach(out, module_name, module, adapter)
    return out


# --- which patches fit -----------------------------------------------------------------------

@dataclass(frozen=True)
class LoRAFit:
    """The part of a LoRA a DiT has layers for, and the patches it has none for (in file order)."""

    lora: LoRA  # only the patches that apply
    skipped: tuple[str, ...]  # keys no rule explains (as spelled in the file), then layers this DiT lacks

    def summary(self) -> str:
        """One line for the log and the node: what was applied and what was skipped."""
        applied = f"{self.lora.source}: applied {len(self.lora)} patch(es)"
        if not self.skipped:
            return applied
        shown = ", ".join(self.skipped[:_SHOWN_SKIPPED]) + (" ..." if len(self.skipped) > _SHOWN_SKIPPED else "")
        return (f"{applied}, skipped {len(self.skipped)} this DiT has no layer for (e.g. an I2V LoRA's image "
                f"attention on a T2V model, or keys of another model part): {shown}")


_SHOWN_SKIPPED = 8


def fit_lora(dit: nn.Module, lora: LoRA) -> LoRAFit:
    """Splits `lora` into the patches `dit` has a layer for and the names of the others.

    A patch for a layer the DiT lacks is skipped (as native ComfyUI does). A patch whose layer exists
    with another shape means the LoRA was made for another model size: that, or a LoRA of which
    nothing fits, is a CheckpointError naming the layers.
    """
    modules = dict(dit.named_modules())
    tensors = {**dict(dit.named_parameters()), **dict(dit.named_buffers())}
    clashes, skipped, low_rank, diffs = [], list(lora.unmatched), {}, {}
    for name, patch in lora.low_rank.items():
        module = modules.get(name)
        if module is None or not _is_linear(module):
            skipped.append(name)
            continue
        out_features, in_features = _base(module).out_features, _base(module).in_features
        if patch.down.shape[1] != in_features or patch.up.shape[0] != out_features:
            clashes.append(f"{name} (LoRA [{patch.up.shape[0]} x {patch.down.shape[1]}], layer "
                           f"[{out_features} x {in_features}])")
        low_rank[name] = patch
    for name, diff in lora.diffs.items():
        target = tensors.get(_unwrapped(name, modules))
        if target is None:
            skipped.append(name)
            continue
        if tuple(diff.shape) != tuple(target.shape):
            clashes.append(f"{name} (patch {tuple(diff.shape)}, tensor {tuple(target.shape)})")
        diffs[name] = diff
    config = getattr(dit, "config", None)
    model = f" ({config.preset})" if getattr(config, "preset", None) else ""
    if clashes:
        raise CheckpointError(
            f"{lora.source}: this LoRA does not fit the DiT{model}: {len(clashes)} layer(s) differ in shape, first: "
            f"{clashes[:5]}. It was trained for another Wan model size (e.g. 1.3B vs 14B, or Wan2.2 TI2V-5B); pick "
            f"the LoRA made for this model"
        )
    if len(lora) and not (low_rank or diffs):
        raise CheckpointError(
            f"{lora.source}: none of this LoRA's {len(lora)} patches names a layer of the DiT{model} (first: "
            f"{skipped[:5]}); it was made for another model: pick the LoRA made for this one"
        )
    return LoRAFit(replace(lora, low_rank=low_rank, diffs=diffs, unmatched=()), tuple(skipped))


def _unwrapped(name: str, modules: dict) -> str:
    """`blocks.0.self_attn.q.bias` -> `blocks.0.self_attn.q.base.bias` when q is already wrapped."""
    owner, _, leaf = name.rpartition(".")
    return f"{owner}.base.{leaf}" if isinstance(modules.get(owner), LoRALinear) else name


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, (Linear, LoRALinear))


def _gguf_quantised(dit: nn.Module) -> bool:
    return any(isinstance(m, Linear) and m.quant is not None for m in dit.modules())


# --- building adapters ----------------------------------------------------------------------

def _adapter(lora: LoRA, name: str, strength: float, device: torch.device, dtype: torch.dtype) -> Adapter:
    patch: Optional[LowRank] = lora.low_rank.get(name)
    weight_diff = lora.diffs.get(f"{name}.weight")
    bias_diff = lora.diffs.get(f"{name}.bias")

    def prepared(t: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
        return (t.to(device, torch.float32) * factor).to(dtype)

    bias = None
    if bias_diff is not None:
        bias = strength * bias_diff.to(device, torch.float32)
    if patch is not None and patch.up_bias is not None:
        up_bias = strength * patch.scale * patch.up_bias.to(device, torch.float32)
        bias = up_bias if bias is None else bias + up_bias
    return Adapter(
        down=prepared(patch.down) if patch is not None else None,
        up=prepared(patch.up, strength * patch.scale) if patch is not None else None,
        weight_diff=prepared(weight_diff, strength) if weight_diff is not None else None,
        bias=bias.to(dtype) if bias is not None else None,
    )


def _base(module: nn.Module) -> Linear:
    return module.base if isinstance(module, LoRALinear) else module


# --- merged ---------------------------------------------------------------------------------

def _merge(linear: Linear, adapter: Adapter) -> None:
    """Replace `linear`'s weight (and bias) by new tensors holding the patched values."""
    weight = linear.weight
    merged = weight.float()  # [out, in]
    if linear.weight_scale is not None:
        merged = merged * linear.weight_scale.float()
    if adapter.down is not None:
        merged = merged + adapter.up.float() @ adapter.down.float()
    if adapter.weight_diff is not None:
        merged = merged + adapter.weight_diff.float()
    if weight.dtype in FP8_DTYPES:
        # Requantise with a fresh per-tensor scale: the patched range differs from the base one.
        scale = merged.abs().amax().clamp_min(1e-12) / torch.finfo(weight.dtype).max
        linear.weight = nn.Parameter((merged / scale).to(weight.dtype), requires_grad=False)
        linear.weight_scale = scale.reshape(())
    else:
        if linear.weight_scale is not None:
            linear.weight_scale = None  # folded in above
        linear.weight = nn.Parameter(merged.to(weight.dtype), requires_grad=False)
    if adapter.bias is not None:
        if linear.bias is None:
            raise CheckpointError("a LoRA patches the bias of a linear layer that has none")
        linear.bias = nn.Parameter((linear.bias.float() + adapter.bias.float()).to(linear.bias.dtype),
                                   requires_grad=False)


# --- on the fly -----------------------------------------------------------------------------

def _attach(root: nn.Module, name: str, module: nn.Module, adapter: Adapter) -> None:
    if isinstance(module, LoRALinear):
        module.adapters = module.adapters + (adapter,)
        return
    parent_name, _, child = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, LoRALinear(module, (adapter,)))


# --- other tensors --------------------------------------------------------------------------

def _add_to_tensor(root: nn.Module, name: str, delta: torch.Tensor) -> None:
    owner_name, _, leaf = name.rpartition(".")
    owner = root.get_submodule(owner_name) if owner_name else root
    old = getattr(owner, leaf)
    new = (old.float() + delta.to(old.device, torch.float32)).to(old.dtype)
    setattr(owner, leaf, nn.Parameter(new, requires_grad=False))


def _shared_copy(dit: nn.Module) -> nn.Module:
    """New module objects, same tensors: patching the copy's attributes leaves `dit` alone."""
    memo = {id(t): t for t in (*dit.parameters(), *dit.buffers())}
    for module in dit.modules():
        if isinstance(module, LoRALinear):
            memo[id(module.adapters)] = module.adapters
    return copy.deepcopy(dit, memo)
