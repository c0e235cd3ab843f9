from __future__ import annotations

import math

import pytest
import torch

from kinema.kernels import (AttentionUnavailable, apply_rope, attention, available_backends, rope_axis_dims,
                            rope_rotation)


def naive_attention(q, k, v):  # [B, L, H, D]
    scores = torch.einsum("blhd,bmhd->bhlm", q, k) / math.sqrt(q.shape[-1])
    return torch.einsum("bhlm,bmhd->blhd", scores.softmax(-1), v)


def test_sdpa_matches_naive(seed):
    q, k, v = (torch.randn(2, 7, 3, 16) for _ in range(3))
    torch.testing.assert_close(attention(q, k, v), naive_attention(q, k, v), atol=1e-5, rtol=1e-5)


def test_sdpa_is_available_everywhere():
    assert "sdpa" in available_backends()


def test_unknown_backend_names_known_ones():
    q = torch.randn(1, 2, 1, 8)
    with pytest.raises(AttentionUnavailable, match="known: .*sdpa"):
        attention(q, q, q, backend="nope")


def test_flash_on_cpu_refuses_with_reason():
    q = torch.randn(1, 2, 1, 8)
    with pytest.raises(AttentionUnavailable, match="flash"):
        attention(q, q, q, backend="flash")


def test_rope_axis_split_matches_wan():
    assert rope_axis_dims(128) == (44, 42, 42)


def test_rope_matches_complex_reference():
    grid, d = (3, 4, 5), 128
    x = torch.randn(1, 60, 2, d, dtype=torch.float64)
    ours = apply_rope(x.float(), rope_rotation(grid, d))
    # Independent reference: complex multiplication with per-axis polar tables (float64).
    dt, dh, dw = rope_axis_dims(d)

    def table(n, dims):
        inv = 1.0 / 10000 ** (torch.arange(0, dims, 2, dtype=torch.float64) / dims)
        return torch.polar(torch.ones(n, dims // 2, dtype=torch.float64), torch.outer(torch.arange(n, dtype=torch.float64), inv))

    f, h, w = grid
    freqs = torch.cat(
        [
            table(f, dt)[:, None, None].expand(f, h, w, -1),
            table(h, dh)[None, :, None].expand(f, h, w, -1),
            table(w, dw)[None, None, :].expand(f, h, w, -1),
        ],
        -1,
    ).reshape(f * h * w, 1, d // 2)
    ref = torch.view_as_real(torch.view_as_complex(x.reshape(1, 60, 2, d // 2, 2)) * freqs).flatten(-2)
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=1e-5)
