"""Attention with log-sum-exp (kernels.attention_lse): every available backend against the plain-torch
reference, and two partial results over disjoint keys merging into the full attention."""
from __future__ import annotations

import pytest
import torch

from kinema.kernels.attention import AttentionUnavailable, attention
from kinema.kernels.attention_lse import LSE_BACKENDS, attention_lse, merge_partial


def _qkv(lq=13, lk=21, dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, n, 3, 16, generator=g, dtype=dtype) for n in (lq, lk, lk))


def test_reference_matches_plain_attention_and_logsumexp():
    q, k, v = _qkv()
    out, lse = attention_lse(q, k, v, backend="reference")
    assert torch.allclose(out, attention(q, k, v), atol=1e-6)
    scores = torch.einsum("bqhd,bkhd->bqhk", q, k) / 4.0
    assert torch.allclose(lse, torch.logsumexp(scores, dim=-1), atol=1e-6)


@pytest.mark.parametrize("backend", [n for n in LSE_BACKENDS if n != "reference"])
def test_backends_match_the_reference(backend):
    q, k, v = _qkv()
    try:
        out, lse = attention_lse(q, k, v, backend=backend)
    except AttentionUnavailable as error:
        pytest.skip(str(error))
    ref_out, ref_lse = attention_lse(q, k, v, backend="reference")
    assert lse.shape == ref_lse.shape == (2, 13, 3) and lse.dtype == torch.float32
    assert torch.allclose(out, ref_out, atol=1e-5) and torch.allclose(lse, ref_lse, atol=1e-5)


def test_partials_over_disjoint_keys_merge_exactly():
    q, k, v = _qkv()
    first = attention_lse(q, k[:, :8], v[:, :8], backend="sdpa")
    second = attention_lse(q, k[:, 8:], v[:, 8:], backend="sdpa")
    merged, lse = merge_partial(*first, *second)
    full, full_lse = attention_lse(q, k, v, backend="reference")
    assert (merged - full).abs().max() <= 1e-5 * full.abs().max()
    assert torch.allclose(lse, full_lse, atol=1e-5)


def test_unknown_backend_names_the_ones_that_return_lse():
    q, k, v = _qkv()
    with pytest.raises(AttentionUnavailable, match="cannot return the log-sum-exp.*sdpa"):
        attention_lse(q, k, v, backend="sage")
