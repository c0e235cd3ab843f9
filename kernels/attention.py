"""Attention backend registry.

Every backend takes q, k, v laid out `[B, L, H, D]` (tokens before heads, as the DiT produces
them) and returns `[B, Lq, H, D]`. A backend declares what it supports; asking for one that is
missing or cannot run the call raises `AttentionUnavailable` naming why and how to fix it.
There is no silent fallback: a call either runs on the backend asked for or fails loudly,
so numerics never change behind the user's back. `backend="auto"` is the one explicit way to
let the registry pick the first backend (in priority order) that can run the call.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F


class AttentionUnavailable(RuntimeError):
    """The requested attention backend cannot run this call (missing package, dtype, device...)."""


@dataclass(frozen=True)
class AttentionCall:
    """What a backend needs to know to decide whether it can run a call."""

    device_type: str
    dtype: torch.dtype
    head_dim: int
    has_mask: bool
    options: frozenset  # names of backend-specific keyword options given (e.g. "grid")


@dataclass(frozen=True)
class AttentionBackend:
    name: str
    priority: int  # lower runs first under backend="auto"
    run: Callable[..., torch.Tensor]
    # Returns None when the backend can run the call, else a human-readable reason.
    refuses: Callable[[AttentionCall], Optional[str]]
    install_hint: str = ""


_REGISTRY: dict[str, AttentionBackend] = {}


def register_backend(backend: AttentionBackend) -> None:
    if backend.name in _REGISTRY:
        raise ValueError(f"attention backend {backend.name!r} is already registered")
    _REGISTRY[backend.name] = backend


def get_backend(name: str) -> AttentionBackend:
    if name not in _REGISTRY:
        raise AttentionUnavailable(
            f"unknown attention backend {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name]


def available_backends(device_type: str = "cpu", dtype: torch.dtype = torch.float32) -> list[str]:
    """Names of the backends that could run a plain (unmasked, head_dim 128) call here."""
    call = AttentionCall(device_type, dtype, 128, False, frozenset())
    return [b.name for b in sorted(_REGISTRY.values(), key=lambda b: b.priority) if b.refuses(call) is None]


def attention(
    q: torch.Tensor,  # [B, Lq, H, D]
    k: torch.Tensor,  # [B, Lk, H, D]
    v: torch.Tensor,  # [B, Lk, H, D]
    *,
    mask: Optional[torch.Tensor] = None,  # bool [B or 1, 1 or H, Lq, Lk], True = attend
    backend: str = "sdpa",
    **options,
) -> torch.Tensor:  # [B, Lq, H, D]
    call = AttentionCall(q.device.type, q.dtype, q.shape[-1], mask is not None, frozenset(options))
    if backend == "auto":
        for candidate in sorted(_REGISTRY.values(), key=lambda b: b.priority):
            if candidate.refuses(call) is None:
                return candidate.run(q, k, v, mask=mask, **options)
        raise AttentionUnavailable(f"no attention backend can run {call}")
    chosen = get_backend(backend)
    reason = chosen.refuses(call)
    if reason is not None:
        hint = f" ({chosen.install_hint})" if chosen.install_hint else ""
        raise AttentionUnavailable(f"attention backend {backend!r} cannot run this call: {reason}{hint}")
    return chosen.run(q, k, v, mask=mask, **options)


# --- sdpa: PyTorch's scaled_dot_product_attention, always available -------------------------


def _run_sdpa(q, k, v, *, mask=None):
    # SDPA wants [B, H, L, D]; transposes are views, the kernel handles the strides.
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if q.device.type == "cpu":
        # The CPU flash kernel re-reads k and v for every query block: on contiguous [B, H, L, D]
        # it runs ~15% faster than on the strided views, far more than the one copy costs.
        k, v = k.contiguous(), v.contiguous()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2)


def _sdpa_refuses(call: AttentionCall) -> Optional[str]:
    if call.options:
        return f"sdpa takes no options, got {sorted(call.options)}"
    return None


register_backend(AttentionBackend("sdpa", priority=100, run=_run_sdpa, refuses=_sdpa_refuses))


# --- flash: flash-attn 2/3, CUDA + fp16/bf16 only ------------------------------------------


def _flash_refuses(call: AttentionCall) -> Optional[str]:
    if importlib.util.find_spec("flash_attn") is None:
        return "the flash-attn package is not installed"
    if call.device_type != "cuda":
        return f"flash-attn runs on CUDA only, this call is on {call.device_type}"
    if call.dtype not in (torch.float16, torch.bfloat16):
        return f"flash-attn needs fp16 or bf16 inputs, got {call.dtype}"
    if call.has_mask or call.options:
        return "flash-attn backend takes no mask or options"
    if call.head_dim > 256:
        return f"flash-attn supports head_dim <= 256, got {call.head_dim}"
    return None


def _run_flash(q, k, v, *, mask=None):
    from flash_attn import flash_attn_func  # lazy: optional dependency

    return flash_attn_func(q, k, v)


register_backend(
    AttentionBackend("flash", priority=10, run=_run_flash, refuses=_flash_refuses, install_hint="pip install flash-attn")
)


# --- sage: SageAttention (quantised QK), CUDA only ------------------------------------------


def _sage_refuses(call: AttentionCall) -> Optional[str]:
    if importlib.util.find_spec("sageattention") is None:
        return "the sageattention package is not installed"
    if call.device_type != "cuda":
        return f"SageAttention runs on CUDA only, this call is on {call.device_type}"
    if call.dtype not in (torch.float16, torch.bfloat16):
        return f"SageAttention needs fp16 or bf16 inputs, got {call.dtype}"
    if call.has_mask or call.options:
        return "sage backend takes no mask or options"
    return None


def _run_sage(q, k, v, *, mask=None):
    from sageattention import sageattn  # lazy: optional dependency

    return sageattn(q, k, v, tensor_layout="NHD")


register_backend(
    AttentionBackend("sage", priority=20, run=_run_sage, refuses=_sage_refuses, install_hint="pip install sageattention")
)
