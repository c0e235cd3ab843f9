"""Spatial tiling with overlap blending, one causal cache per tile, chunk by chunk in time.

Tiles are laid out on the latent grid. Each tile is its own causal stream (its own cache), so
tiling composes with streaming: every time chunk runs through every tile, and the tile outputs
are blended into one chunk before it is handed on. Inside an overlap the weights ramp linearly
and are normalised to sum to 1, so each output value is a convex combination of tile outputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .cache import CausalCache


@dataclass(frozen=True)
class Tiling:
    """Square spatial tiles: `tile` and `overlap` in pixels (rounded down to the VAE's spatial stride)."""

    tile: int
    overlap: int

    def __post_init__(self):
        if self.tile <= 0 or self.overlap < 0 or self.overlap * 2 > self.tile:
            raise ValueError(f"tiling needs tile > 0 and 0 <= overlap <= tile/2 (pixels); got {self}")


def spans(total: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) ranges of length `tile` covering 0..total, consecutive ones overlapping by >= `overlap`."""
    if tile >= total:
        return [(0, total)]
    stride = tile - overlap
    starts = list(range(0, total - tile, stride)) + [total - tile]  # the last tile ends flush with the edge
    return [(s, s + tile) for s in starts]


def _ramp(length: int, before: int, after: int) -> torch.Tensor:
    """Weights over one tile's length: rising over the `before` overlap, falling over the `after` one."""
    w = torch.ones(length, dtype=torch.float64)
    if before:
        w[:before] = torch.arange(1, before + 1, dtype=torch.float64) / (before + 1)
    if after:
        w[length - after :] = torch.arange(after, 0, -1, dtype=torch.float64) / (after + 1)
    return w


def _ramps(ranges: list[tuple[int, int]], scale: int) -> list[torch.Tensor]:
    out = []
    for i, (s, e) in enumerate(ranges):
        before = ranges[i - 1][1] - s if i > 0 else 0
        after = e - ranges[i + 1][0] if i + 1 < len(ranges) else 0
        out.append(_ramp((e - s) * scale, before * scale, after * scale))
    return out


class TiledStream:
    """Runs `fn(chunk, cache)` over overlapping tiles of each time chunk and blends the results.

    Tiles are [start, end) on the latent grid; the input of `fn` is `in_scale` times that grid
    (pixels when encoding) and its output `out_scale` times it (pixels when decoding).
    """

    def __init__(self, height: int, width: int, tile: Optional[int], overlap: int, in_scale: int, out_scale: int):
        tile = tile or max(height, width)
        self.rows, self.cols = spans(height, tile, overlap), spans(width, tile, overlap)
        self.in_scale, self.out_scale = in_scale, out_scale
        self.size = (height * out_scale, width * out_scale)
        self.caches = {(i, j): CausalCache() for i in range(len(self.rows)) for j in range(len(self.cols))}
        row_w, col_w = _ramps(self.rows, out_scale), _ramps(self.cols, out_scale)
        self.weights = {(i, j): (row_w[i][:, None] * col_w[j][None, :]).float() for (i, j) in self.caches}

    @property
    def tile_count(self) -> int:
        return len(self.caches)

    def __call__(self, x: torch.Tensor, fn: Callable[[torch.Tensor, CausalCache], torch.Tensor]) -> torch.Tensor:
        if self.tile_count == 1:
            return fn(x, self.caches[0, 0])
        si, so = self.in_scale, self.out_scale
        total = weight_sum = None
        for (i, j), cache in self.caches.items():
            (h0, h1), (w0, w1) = self.rows[i], self.cols[j]
            y = fn(x[..., h0 * si : h1 * si, w0 * si : w1 * si], cache)  # [B, C, t, th, tw]
            if total is None:
                total = y.new_zeros(*y.shape[:3], *self.size, dtype=torch.float32)
                weight_sum = torch.zeros(self.size, device=y.device)
            w = self.weights[i, j].to(y.device)
            total[..., h0 * so : h1 * so, w0 * so : w1 * so] += y.float() * w
            weight_sum[h0 * so : h1 * so, w0 * so : w1 * so] += w
        return (total / weight_sum).to(y.dtype)

    def cache_bytes(self) -> int:
        return sum(c.nbytes() for c in self.caches.values())


def auto_tile(cfg, latent_hw: tuple[int, int], batch: int, dtype: torch.dtype, device: torch.device,
              budget_bytes: Optional[int] = None) -> Optional[Tiling]:
    """Tiling for a decode that would not fit in `budget_bytes` (default: a share of free memory), else None.

    The estimate counts the widest activations of one chunk at full output resolution (the last
    decoder stage: 4 new + 2 cached frames, a few live copies per residual block).
    """
    if budget_bytes is None:
        budget_bytes = _free_bytes(device)
    stride = cfg.spatial_stride
    element = torch.finfo(dtype).bits // 8
    per_pixel = batch * 6 * 6 * cfg.decoder_base_dim * cfg.dim_mult[0] * element  # frames x live copies x channels

    def fits(h: int, w: int) -> bool:
        return h * w * stride * stride * per_pixel <= budget_bytes

    h, w = latent_hw
    if fits(h, w):
        return None
    tile = max(h, w)
    while tile > 8 and not fits(min(tile, h), min(tile, w)):
        tile = tile * 3 // 4
    tile_px = max(tile, 8) * stride
    return Tiling(tile=tile_px, overlap=(tile_px // 4) // stride * stride)


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    import psutil

    return int(psutil.virtual_memory().available * 0.5)
