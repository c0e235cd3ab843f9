"""Which self-attention each DiT layer runs at each denoising step: dense early, sparse later.

Sparse-attention papers for video DiTs (Sparse VideoGen, Radial Attention) keep the first,
high-noise steps and the first layer(s) dense, where the global layout is decided, and go sparse
after. A step is identified by its timestep (0..1000, high = noisy) so the DiT can apply the
schedule by itself from the `t` it is called with, whatever the sampler and step count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .window import Grid, SparseWindow


@dataclass(frozen=True)
class SparseSchedule:
    window: SparseWindow = SparseWindow()
    # Steps whose timestep is >= this run dense (e.g. 900: the first few steps of a shifted Wan
    # schedule). None = sparse from the first step.
    dense_from_timestep: Optional[float] = None
    dense_layers: tuple[int, ...] = ()  # layer indices that always run dense (e.g. (0,))

    def __post_init__(self):
        if not isinstance(self.window, SparseWindow):
            raise TypeError(f"SparseSchedule.window must be a SparseWindow, got {type(self.window).__name__}")
        if self.dense_from_timestep is not None and not 0 <= self.dense_from_timestep <= 1000:
            raise ValueError(
                f"SparseSchedule.dense_from_timestep must be None or in 0..1000 (Wan's timestep scale), "
                f"got {self.dense_from_timestep!r}"
            )
        if any(not isinstance(i, int) or i < 0 for i in self.dense_layers):
            raise ValueError(f"SparseSchedule.dense_layers must be layer indices >= 0, got {self.dense_layers!r}")

    def __call__(self, layer: int, grid: Grid, timestep: float, dense_backend: str) -> tuple[str, dict]:
        """(backend, options) for this layer's self-attention over `grid` tokens at `timestep`."""
        dense_step = self.dense_from_timestep is not None and timestep >= self.dense_from_timestep
        if dense_step or layer in self.dense_layers:
            return dense_backend, {}
        return "sparse3d", {"grid": tuple(grid), "window": self.window}
