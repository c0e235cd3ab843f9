"""Hot ops behind stable signatures: attention backends (one registry) and 3D RoPE.

Imports torch only; optional libraries are imported lazily inside availability checks.
"""
from .attention import (
    AttentionBackend,
    AttentionUnavailable,
    attention,
    available_backends,
    get_backend,
    register_backend,
)
from .rope import apply_rope, rope_axis_dims, rope_cos_sin

__all__ = [
    "AttentionBackend",
    "AttentionUnavailable",
    "attention",
    "available_backends",
    "get_backend",
    "register_backend",
    "apply_rope",
    "rope_axis_dims",
    "rope_cos_sin",
]
