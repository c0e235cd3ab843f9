"""KinemaDiTLoader's 'sparse3d' attention choice: Kinema's block-sparse 3D self-attention with its quality schedule.

Each query tile of the latent video attends to a window of neighbouring tiles (kernels/sparse3d). Like the
sparse-attention papers for video DiTs, the schedule keeps the first, noisiest steps and the first layers dense,
where the layout of the whole video is decided, and runs the rest sparse. Cross-attention stays dense.
"""
from __future__ import annotations

SPARSE3D = "sparse3d"
DENSE_BACKEND = "auto"  # what the dense steps and layers (and cross-attention) run: the fastest one installed

INPUTS = {
    "sparse_dense_from_t": ("FLOAT", {"default": 900.0, "min": 0.0, "max": 1000.0, "step": 10.0, "tooltip":
        "sparse3d only: steps whose timestep is at least this run dense (1000 = the noisiest). 900 keeps the "
        "first few steps of a shifted Wan schedule dense; 1000 makes every step sparse after the very first."}),
    "sparse_dense_layers": ("INT", {"default": 1, "min": 0, "max": 64, "tooltip":
        "sparse3d only: the first N transformer blocks always run dense attention (0 = none)."}),
}


def attention_setup(attention: str, dense_from_t: float, dense_layers: int):
    """(backend to load the DiT with, attention policy or None) for the loader's choice."""
    if attention != SPARSE3D:
        return attention, None
    from ..kernels.sparse3d import SparseSchedule

    schedule = SparseSchedule(dense_from_timestep=dense_from_t, dense_layers=tuple(range(dense_layers)))
    return DENSE_BACKEND, schedule
