"""Warping with known flows: flow inversion against its closed form, occlusion-aware mixing on exact motion."""
from __future__ import annotations

import math

import pytest
import torch

from kinema.core.interp import warp
from moving_scene import BACKGROUND, DISC, _texture

SIZE, STEP = 64, 1 / 16  # frame size; seconds between the two input frames


def test_flow_inversion_matches_the_affine_closed_form():
    # flow(p) = A p + b; p + t * flow(p) = x  =>  p = (I + t A)^-1 (x - t b)
    a = torch.tensor([[0.06, -0.03], [0.02, 0.05]], dtype=torch.float64)
    b = torch.tensor([1.5, -0.75], dtype=torch.float64)
    coords = torch.arange(SIZE, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    points = torch.stack([x, y])  # [2, H, W] as (x, y)
    flow = (torch.einsum("ij,jhw->ihw", a, points) + b[:, None, None])[None].float()  # [1, 2, H, W]
    for t in (0.3, 0.5, 0.8):
        expected = torch.einsum("ij,jhw->ihw", torch.linalg.inv(torch.eye(2, dtype=torch.float64) + t * a),
                                points - t * b[:, None, None]) - points
        offset, residual = warp.invert_motion(flow, t)
        inner = (slice(None), slice(8, -8), slice(8, -8))  # away from the clamped border
        assert (offset[0][inner] - expected.float()[inner]).abs().max() < 1e-3
        assert residual[0][inner].max() < 1e-3


def _square_scene(seconds: float, square=(60.0, 25.0), background=(20.0, 8.0)):
    """A hard-edged textured square over a panning texture -> frame [1, 3, H, W], exact flow per second
    [1, 2, H, W]."""
    coords = torch.arange(SIZE, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cx, cy = 14 + square[0] * seconds, 20 + square[1] * seconds
    inside = ((x - cx).abs() < 12) & ((y - cy).abs() < 12)  # [H, W]
    image = torch.where(inside[..., None], _texture(x - cx, y - cy, DISC),
                        _texture(x - background[0] * seconds, y - background[1] * seconds, BACKGROUND))
    velocity = torch.stack([torch.where(inside, square[0], background[0]),
                            torch.where(inside, square[1], background[1])])  # [2, H, W] pixels per second
    return image.float().permute(2, 0, 1)[None], velocity.float()[None]


def _psnr(a, b) -> float:
    return (10 * torch.log10(1 / ((a - b) ** 2).mean())).item()


def test_exact_flows_give_the_true_in_between_and_occlusion_weights_help(monkeypatch):
    start = 0.2
    frame0, velocity0 = _square_scene(start)
    frame1, velocity1 = _square_scene(start + STEP)
    pair = warp.FlowPair.from_flows(frame0, frame1, velocity0 * STEP, -velocity1 * STEP)
    for t in (0.25, 0.5, 0.75):
        truth, _ = _square_scene(start + t * STEP)
        aware = _psnr(pair.at(t), truth)
        with monkeypatch.context() as patch:
            patch.setattr(warp, "TRUST_PIXELS", math.inf)  # every side fully trusted: plain (1 - t, t) mixing
            plain = _psnr(pair.at(t), truth)
        blend = _psnr(torch.lerp(frame0, frame1, t), truth)
        assert aware >= 30 and aware >= blend + 6, (t, aware, blend)
        assert aware > plain, (t, aware, plain)  # covered/uncovered pixels come from the frame that sees them


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_end_points_are_the_input_frames(t):
    frame0, velocity0 = _square_scene(0.2)
    frame1, velocity1 = _square_scene(0.2 + STEP)
    pair = warp.FlowPair.from_flows(frame0, frame1, velocity0 * STEP, -velocity1 * STEP)
    torch.testing.assert_close(pair.at(t), frame0 if t == 0 else frame1, atol=2e-3, rtol=0)
