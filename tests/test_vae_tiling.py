"""Temporal chunking and spatial tiling against the plain full-frame decode.

Stated bound (docs in core/vae/tiling.py):
- temporal chunking (any `chunk_frames`, streaming with `iter_decode`) and a single tile are exact:
  equal to the full decode up to fp32 rounding (<= 1e-5 x max|full|);
- spatial tiling: every output value is the convex combination, with the linear-ramp weights,
  of the values that the covering tiles decode on their own (each tile a full causal stream),
  clamped to [-1, 1] after blending (clamping only brings values closer to the clamped full decode), so
  |tiled - full| <= max over covering tiles |tile - full|, pointwise; where one tile covers a
  pixel the value is that tile's decode. How far one tile's decode is from the full decode
  depends on the model's receptive field (the mid-block attention is global per frame).
"""
from __future__ import annotations

import pytest
import torch

from kinema.core.progress import Cancelled, Progress
from kinema.core.vae import CausalCache, Tiling, load_vae
from kinema.core.vae.tiling import auto_tile, spans
from kinema.tests.tiny_vae import save_tiny_vae


@pytest.fixture(scope="module", params=("2.1", "2.2"))
def vae(request, tmp_path_factory):
    return load_vae(save_tiny_vae(tmp_path_factory.mktemp("vae"), request.param, "comfy"))


def _latents(vae, t, h, w, seed=0):
    return torch.randn(1, vae.config.z_dim, t, h, w, generator=torch.Generator().manual_seed(seed))


def test_streaming_chunks_are_exact(vae):
    z = _latents(vae, 3, 2, 3)
    full = vae.decode(z, tiling=None)
    chunks = list(vae.iter_decode(z, tiling=None))
    assert [c.shape[2] for c in chunks] == [1, 4, 4]
    assert torch.equal(torch.cat(chunks, dim=2), full)
    bigger = vae.decode(z, tiling=None, chunk_frames=2)
    assert (bigger - full).abs().max() <= 1e-5 * full.abs().max()


def test_one_tile_covering_the_frame_is_the_full_decode(vae):
    z = _latents(vae, 2, 2, 3)
    s = vae.config.spatial_stride
    assert torch.equal(vae.decode(z, tiling=Tiling(tile=3 * s, overlap=s)), vae.decode(z, tiling=None))


def _unclamped_decode(vae, z):
    """The decoder's raw output for a whole stream (decode() clamps it to [-1, 1])."""
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    cache = CausalCache()
    with torch.no_grad():
        return torch.cat([vae.network.decode_chunk(z[:, :, i : i + 1] * std + mean, cache)
                          for i in range(z.shape[2])], dim=2)


def _blend_reference(vae, z, tile, overlap):
    """Each tile decoded on its own, blended with linear ramps written out here from the definition."""
    s = vae.config.spatial_stride
    _, _, t, h, w = z.shape
    rows, cols = spans(h, tile, overlap), spans(w, tile, overlap)

    def ramp(ranges, i):
        (a, b) = ranges[i]
        pos = torch.arange(a * s, b * s, dtype=torch.float64) + 0.5
        weight = torch.ones_like(pos)
        if i > 0:  # rises across the overlap with the previous tile
            lo, hi = a * s, ranges[i - 1][1] * s
            inside = pos < hi
            weight[inside] = (pos[inside] - lo + 0.5) / (hi - lo + 1)
        if i + 1 < len(ranges):
            lo, hi = ranges[i + 1][0] * s, b * s
            inside = pos >= lo
            weight[inside] = (hi - pos[inside] + 0.5) / (hi - lo + 1)
        return weight

    total = torch.zeros(1, 3, vae.config.video_frames(t), h * s, w * s, dtype=torch.float64)
    weight_sum = torch.zeros(h * s, w * s, dtype=torch.float64)
    tiles = []
    for i, (h0, h1) in enumerate(rows):
        for j, (w0, w1) in enumerate(cols):
            own = _unclamped_decode(vae, z[..., h0:h1, w0:w1]).double()
            weight = ramp(rows, i)[:, None] * ramp(cols, j)[None, :]
            total[..., h0 * s : h1 * s, w0 * s : w1 * s] += own * weight
            weight_sum[h0 * s : h1 * s, w0 * s : w1 * s] += weight
            tiles.append((own, (h0 * s, h1 * s, w0 * s, w1 * s)))
    return (total / weight_sum).float(), tiles


def test_tiled_decode_is_the_convex_blend_of_tile_decodes(vae):
    s = vae.config.spatial_stride
    z = _latents(vae, 2, 4, 5, seed=1)
    tiled = vae.decode(z, tiling=Tiling(tile=3 * s, overlap=s))
    expected, tiles = _blend_reference(vae, z, 3, 1)
    assert (tiled - expected.clamp(-1, 1)).abs().max() <= 1e-5

    # The stated bound: pointwise no worse than the worst covering tile (clamping is 1-Lipschitz).
    full = _unclamped_decode(vae, z)
    worst = torch.zeros_like(full)
    for own, (a, b, c, d) in tiles:
        worst[..., a:b, c:d] = torch.maximum(worst[..., a:b, c:d], (own - full[..., a:b, c:d]).abs())
    assert ((tiled - full.clamp(-1, 1)).abs() <= worst + 1e-5).all()


def test_tiled_encode_blends_in_latent_space(vae):
    s = vae.config.spatial_stride
    video = torch.rand(1, 3, 5, 4 * s, 3 * s, generator=torch.Generator().manual_seed(2)) * 2 - 1
    full = vae.encode(video)
    one_tile = vae.encode(video, tiling=Tiling(tile=4 * s, overlap=s))
    assert torch.equal(one_tile, full)
    tiled = vae.encode(video, tiling=Tiling(tile=3 * s, overlap=s))
    top, bottom = vae.encode(video[..., : 3 * s, :]), vae.encode(video[..., s:, :])
    # Rows 0 and 3 are covered by one tile only; rows 1-2 are ramps 2/3,1/3 (top) and 1/3,2/3.
    assert torch.allclose(tiled[..., 0, :], top[..., 0, :], atol=1e-5)
    assert torch.allclose(tiled[..., 3, :], bottom[..., 2, :], atol=1e-5)
    assert torch.allclose(tiled[..., 1, :], (2 * top[..., 1, :] + bottom[..., 0, :]) / 3, atol=1e-5)


def test_spans_cover_the_grid_with_full_tiles():
    assert spans(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert spans(5, 8, 2) == [(0, 5)]
    assert spans(9, 4, 2) == [(0, 4), (2, 6), (4, 8), (5, 9)]


def test_auto_tiling_only_when_memory_is_short(vae):
    cfg = vae.config
    assert auto_tile(cfg, (8, 8), 1, torch.float32, torch.device("cpu"), budget_bytes=1 << 40) is None
    tiling = auto_tile(cfg, (64, 64), 1, torch.float32, torch.device("cpu"), budget_bytes=64 << 20)
    assert tiling is not None and tiling.tile % cfg.spatial_stride == 0 and 0 < tiling.overlap < tiling.tile
    assert tiling.tile < 64 * cfg.spatial_stride


def test_bad_tiling_is_refused():
    with pytest.raises(ValueError, match="overlap <= tile/2"):
        Tiling(tile=64, overlap=48)


def test_decode_reports_progress_and_can_be_cancelled(vae):
    seen = []
    vae.decode(_latents(vae, 3, 1, 2), progress=Progress(on_step=lambda d, t, _: seen.append((d, t))))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    def cancel_after_first():
        if seen_cancel:
            raise Cancelled("stop")
        seen_cancel.append(1)

    seen_cancel = []
    with pytest.raises(Cancelled):
        vae.decode(_latents(vae, 3, 1, 2), progress=Progress(check_cancel=cancel_after_first))
