"""Resizes and face crops of the pose path against Pillow (the reference for antialiased shrinking), on each device."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from kinema.core.pose.face_crops import crop_face
from kinema.core.pose.resize import resize_pictures

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
SIZES = ((75, 64), (96, 64), (112, 64), (128, 64), (192, 64), (40, 64))  # shrink 1.17x .. 3x, and enlarge


def _pillow(picture: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(picture).resize((size, size), Image.BILINEAR)).astype(np.float64)


def _ours(picture: np.ndarray, size: int, device="cpu") -> np.ndarray:
    return resize_pictures(torch.from_numpy(picture)[None].to(device), size, size)[0].cpu().double().numpy()


@pytest.mark.parametrize("device", DEVICES)
def test_resize_matches_pillow_within_one_level(device):
    rng = np.random.default_rng(0)
    for source, target in SIZES:
        picture = rng.integers(0, 256, (source, source, 3), dtype=np.uint8)
        assert np.abs(_ours(picture, target, device) - _pillow(picture, target)).max() <= 1.0, (source, target)


def test_resize_removes_detail_finer_than_the_new_pixels():
    # Stripes of period 2.2 source pixels cannot be shown at 1/1.5 of the size: a faithful shrink is nearly
    # flat grey; what is left is aliasing. Pillow's reducing filter (and ours) leaves a few levels; kornia's
    # resize(antialias=True) blurs with sigma (1.5 - 1) / 2 first and keeps most of the false pattern.
    from kornia.geometry.transform import resize as kornia_resize

    x = np.arange(96)
    stripes = np.repeat((127.5 + 127.5 * np.cos(2 * np.pi * x / 2.2))[None], 96, axis=0).round().astype(np.uint8)
    picture = np.repeat(stripes[..., None], 3, axis=-1)
    ours = _ours(picture, 64)[..., 0].std()
    pillow = _pillow(picture, 64)[..., 0].std()
    planes = torch.from_numpy(picture).permute(2, 0, 1)[None].float()
    kornia = kornia_resize(planes, (64, 64), antialias=True)[0, 0].std().item()
    unfiltered = torch.nn.functional.interpolate(planes, size=(64, 64), mode="bilinear")[0, 0].std().item()
    assert ours == pytest.approx(pillow, abs=1.0) and ours < 0.4 * unfiltered and ours < 0.5 * kornia, (
        ours, pillow, kornia, unfiltered)


@pytest.mark.parametrize("device", DEVICES)
def test_face_crops_of_tensors_match_numpy(device):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)
    for box in ((10, 5, 70, 85), (0, 0, 120, 90)):  # enlarged to 64, shrunk to 64
        expected = crop_face(frame, box, 64)
        assert expected.dtype == np.uint8 and expected.shape == (64, 64, 3)
        crop = crop_face(torch.from_numpy(frame).to(device), box, 64)
        assert crop.dtype == torch.uint8 and crop.device.type == device
        assert np.abs(crop.cpu().numpy().astype(int) - expected).max() <= 1  # rounding of float sums per device
        x0, y0, x1, y1 = box
        np.testing.assert_allclose(expected, _pillow(np.ascontiguousarray(frame[y0:y1, x0:x1]), 64), atol=1.0)
        floats = crop_face(torch.from_numpy(frame).to(device).float() / 255, box, 64)
        assert floats.dtype == torch.float32
        np.testing.assert_allclose(floats.cpu().numpy() * 255, expected, atol=0.51)
