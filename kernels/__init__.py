"""Hot ops behind stable signatures: attention backends (one registry), block-sparse 3D attention, 3D RoPE.

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
from .rope import apply_rope, rope_axis_dims, rope_cos_sin, rope_rotation
from .sparse3d import SparseWindow, sparse3d_attention  # importing registers the "sparse3d" backend

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
    "rope_rotation",
    "SparseWindow",
    "sparse3d_attention",
]
