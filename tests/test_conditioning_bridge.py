"""KinemaConditioningFromNative / ToNative on hand-made native CONDITIONING (ComfyUI's layout: [[[1, 512, d], {}]],
rows after the prompt zero); tests/test_host_ecosystem.py checks them against a real ComfyUI's CLIPTextEncode."""
from __future__ import annotations

import pytest
import torch

from kinema.nodes.conditioning_bridge import KinemaConditioningFromNative, KinemaConditioningToNative
from kinema.nodes.types import Conditioning


def _native(rows: torch.Tensor) -> list:
    padded = torch.zeros(1, 512, rows.shape[1])
    padded[0, : rows.shape[0]] = rows
    return [[padded, {"pooled_output": None}]]


def test_round_trip_keeps_the_prompt_rows_and_the_padding():
    positive, negative = torch.randn(7, 16), torch.randn(3, 16)
    conditioning = KinemaConditioningFromNative().convert(_native(positive), _native(negative))[0]
    assert torch.equal(conditioning.positive, positive) and torch.equal(conditioning.negative, negative)
    back_positive, back_negative = KinemaConditioningToNative().convert(conditioning)
    assert torch.equal(back_positive[0][0], _native(positive)[0][0])
    assert torch.equal(back_negative[0][0], _native(negative)[0][0])


def test_refuses_combined_or_empty_conditioning():
    rows = _native(torch.randn(2, 8))
    with pytest.raises(ValueError, match="holds 2 entries .* connect a single CLIPTextEncode"):
        KinemaConditioningFromNative().convert(rows + rows, rows)
    with pytest.raises(ValueError, match="all zeros"):
        KinemaConditioningFromNative().convert([[torch.zeros(1, 512, 8), {}]], rows)


def test_to_native_pads_kinema_rows_to_512():
    conditioning = Conditioning(torch.ones(5, 4), torch.ones(1, 4), "a", "")
    positive, negative = KinemaConditioningToNative().convert(conditioning)
    assert positive[0][0].shape == (1, 512, 4) and positive[0][0][0, 5:].abs().sum() == 0
