from __future__ import annotations

import os
import warnings

import pytest
import torch

from kinema.kernels import AttentionUnavailable, SparseWindow, attention, sparse3d_attention
from kinema.kernels.sparse3d import density
from kinema.kernels.sparse3d.flex import BLOCK, block_lists, flex_sparse3d, slot_layout
from kinema.kernels.sparse3d.reference import dense_masked_sparse3d, sparse3d_mask
from kinema.kernels.sparse3d.window import window_starts

HEAVY = os.environ.get("KINEMA_HEAVY") == "1"

# (grid in tokens, window spec): divisible and non-divisible grids, odd/even/oversized windows, global frames.
CASES = [
    ((4, 8, 8), SparseWindow(tile=(2, 4, 4), window=(1, 1, 1))),
    ((4, 8, 8), SparseWindow(tile=(1, 4, 4), window=(3, 1, 2))),
    ((5, 7, 9), SparseWindow(tile=(2, 3, 4), window=(3, 3, 3))),
    ((5, 7, 9), SparseWindow(tile=(2, 3, 4), window=(2, 2, 1), global_frames=1)),
    ((3, 10, 6), SparseWindow(tile=(1, 4, 4), window=(5, 1, 9), global_frames=2)),
    ((7, 5, 6), SparseWindow(tile=(3, 2, 5), window=(1, 2, 2), global_frames=7)),
]


def qkv(grid, batch=2, heads=3, head_dim=16):
    length = grid[0] * grid[1] * grid[2]
    return tuple(torch.randn(batch, length, heads, head_dim) for _ in range(3))


def test_window_starts_centre_and_shift_inside_at_borders():
    assert window_starts(5, 3).tolist() == [0, 0, 1, 2, 2]
    assert window_starts(5, 2).tolist() == [0, 1, 2, 3, 3]
    assert window_starts(2, 2).tolist() == [0, 0]


def brute_force_mask(grid, spec):
    """Token loops straight from the definition: key tile in the window of the query tile, or key in a global frame."""
    f, h, w = grid
    tokens = [(a, b, c) for a in range(f) for b in range(h) for c in range(w)]
    n_tiles = [-(-n // t) for n, t in zip(grid, spec.tile)]

    def window(tile, n, width):
        width = min(width, n)
        start = min(max(tile - (width - 1) // 2, 0), n - width)
        return range(start, start + width)

    mask = torch.zeros(len(tokens), len(tokens), dtype=torch.bool)
    for i, qt in enumerate(tokens):
        for j, kt in enumerate(tokens):
            seen = all(kt[a] // spec.tile[a] in window(qt[a] // spec.tile[a], n_tiles[a], spec.window[a]) for a in range(3))
            mask[i, j] = seen or kt[0] < spec.global_frames
    return mask


@pytest.mark.parametrize("grid,spec", CASES[1:5])
def test_reference_mask_matches_definition(grid, spec):
    assert torch.equal(sparse3d_mask(grid, spec), brute_force_mask(grid, spec))


@pytest.mark.parametrize("grid,spec", CASES)
def test_gather_path_equals_masked_dense(seed, grid, spec):
    q, k, v = qkv(grid)
    ours = sparse3d_attention(q, k, v, grid=grid, window=spec, path="gather")
    torch.testing.assert_close(ours, dense_masked_sparse3d(q, k, v, grid, spec), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grid,spec", CASES[1:4])
def test_flex_block_mask_equals_masked_dense(seed, grid, spec):
    # Eager FlexAttention on CPU: slow but checks the padded tile layout and block mask the GPU uses.
    q, k, v = qkv(grid, batch=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = sparse3d_attention(q, k, v, grid=grid, window=spec, path="flex")
    torch.testing.assert_close(ours, dense_masked_sparse3d(q, k, v, grid, spec), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("grid,spec", CASES + [((5, 18, 20), SparseWindow((2, 8, 8), (1, 2, 2), 1))])
def test_flex_block_lists_match_the_reference_mask(grid, spec):
    # Block lists come from tile-level algebra; check them against the token mask, block by block.
    layout = slot_layout(grid, spec)
    needed, full = block_lists(layout)
    token_mask = sparse3d_mask(grid, spec)  # [L, L]
    slot_mask = torch.zeros(layout.n_slots, layout.n_slots, dtype=torch.bool)
    slot_mask[layout.slot[:, None], layout.slot[None, :]] = token_mask
    real_rows = layout.valid[:, None].expand_as(slot_mask)
    blocks = lambda m: m.view(layout.n_slots // BLOCK, BLOCK, layout.n_slots // BLOCK, BLOCK)  # noqa: E731
    any_kept = blocks(slot_mask & real_rows).any(3).any(1)
    all_kept = blocks(slot_mask | ~real_rows).all(3).all(1) & blocks(real_rows).any(3).any(1)
    assert torch.equal(needed, any_kept)
    assert torch.equal(full, all_kept)


def test_flex_skips_blocks_in_proportion_to_density():
    # 128-token tiles fill whole blocks, so the kept blocks track the kept pairs closely.
    grid, spec = (8, 32, 32), SparseWindow(tile=(2, 8, 8), window=(2, 3, 3))
    needed, full = block_lists(slot_layout(grid, spec))
    assert needed.float().mean().item() == pytest.approx(density(grid, spec))
    assert torch.equal(needed, full)


@pytest.mark.skipif(not HEAVY, reason="compiling FlexAttention for the CPU takes minutes; KINEMA_HEAVY=1 runs it")
def test_compiled_flex_on_cpu_equals_masked_dense(seed):
    # The compiled kernel (unlike eager flex) honours the block lists, as on the GPU.
    grid, spec = (5, 7, 9), SparseWindow(tile=(2, 4, 4), window=(2, 1, 1), global_frames=1)
    q, k, v = qkv(grid, batch=1)
    ours = flex_sparse3d(q, k, v, grid, spec, compiled=True)
    torch.testing.assert_close(ours, dense_masked_sparse3d(q, k, v, grid, spec), atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("grid,spec", [CASES[2], CASES[3], ((6, 30, 52), SparseWindow((2, 8, 8), (3, 3, 3), 1))])
def test_flex_on_cuda_equals_masked_dense(seed, grid, spec):
    q, k, v = (x.cuda() for x in qkv(grid, heads=4, head_dim=64))
    ours = sparse3d_attention(q, k, v, grid=grid, window=spec)  # auto = compiled flex on CUDA
    torch.testing.assert_close(ours, dense_masked_sparse3d(q, k, v, grid, spec), atol=1e-4, rtol=1e-4)


def test_density_of_divisible_grid_is_window_over_tiles():
    spec = SparseWindow(tile=(2, 4, 4), window=(1, 3, 2))  # tile grid 4 x 4 x 4
    assert density((8, 16, 16), spec) == pytest.approx((1 / 4) * (3 / 4) * (2 / 4))
    assert density((8, 16, 16), SparseWindow(tile=(2, 4, 4), window=(9, 9, 9))) == 1.0


def test_registry_backend_runs_sparse3d(seed):
    grid, spec = CASES[3]
    q, k, v = qkv(grid)
    expected = dense_masked_sparse3d(q, k, v, grid, spec)
    torch.testing.assert_close(attention(q, k, v, backend="sparse3d", grid=grid, window=spec), expected, atol=1e-5, rtol=1e-5)
    # "auto" with a grid picks sparse3d (sdpa takes no options); without one it stays dense sdpa.
    torch.testing.assert_close(attention(q, k, v, backend="auto", grid=grid, window=spec), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attention(q, k, v, backend="auto"), attention(q, k, v), atol=0, rtol=0)


def test_registry_refusals_name_the_fix():
    grid, spec = CASES[0]
    q, k, v = qkv(grid, batch=1)
    with pytest.raises(AttentionUnavailable, match=r"needs grid=\(frames, height, width\)"):
        attention(q, k, v, backend="sparse3d", window=spec)
    with pytest.raises(AttentionUnavailable, match="do not pass mask="):
        attention(q, k, v, backend="sparse3d", grid=grid, mask=torch.ones(1, 1, 256, 256, dtype=torch.bool))
    with pytest.raises(AttentionUnavailable, match=r"takes only .*got \['tiles'\]"):
        attention(q, k, v, backend="sparse3d", grid=grid, tiles=3)


def test_bad_inputs_raise_clear_errors():
    q, k, v = qkv((4, 8, 8), batch=1)
    with pytest.raises(ValueError, match=r"grid \(4, 8, 9\) holds 288 tokens but q/k/v have 256; pass the patchified"):
        sparse3d_attention(q, k, v, grid=(4, 8, 9))
    with pytest.raises(ValueError, match="self-attention over one grid"):
        sparse3d_attention(q, k[:, :10], v[:, :10], grid=(4, 8, 8))
    with pytest.raises(ValueError, match="unknown sparse3d path 'fast'; use one of auto, gather, flex"):
        sparse3d_attention(q, k, v, grid=(4, 8, 8), path="fast")
    with pytest.raises(TypeError, match="window must be a kinema SparseWindow"):
        sparse3d_attention(q, k, v, grid=(4, 8, 8), window=(3, 3, 3))
    with pytest.raises(ValueError, match=r"SparseWindow.tile must be three positive ints"):
        SparseWindow(tile=(2, 0, 4))
    with pytest.raises(ValueError, match=r"SparseWindow.window must be three positive ints"):
        SparseWindow(window=(3, 3))
    with pytest.raises(ValueError, match="global_frames must be an int >= 0"):
        SparseWindow(global_frames=-1)
