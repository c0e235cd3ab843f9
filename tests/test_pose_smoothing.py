"""Gap filling and the One Euro filter, against closed forms and a scalar transcription of the paper."""
from __future__ import annotations

import math

import numpy as np
import pytest

from kinema.core.pose.smoothing import CleanSettings, clean, fill_gaps, one_euro
from kinema.core.pose.types import PoseSequence


def _track(xs, ys, conf) -> np.ndarray:
    return np.stack([xs, ys, conf], axis=-1).astype(np.float32)[:, None]  # [N, 1, 3]


def test_short_inner_gap_is_interpolated_linearly():
    n = 10
    xs, ys = np.arange(n) * 10.0 + 5, np.full(n, 7.0)
    conf = np.ones(n)
    conf[3:6] = 0.1  # three low-confidence frames
    filled = fill_gaps(_track(xs, ys, conf), min_confidence=0.3, max_gap=5)[:, 0]
    np.testing.assert_allclose(filled[:, 0], xs, rtol=1e-6)  # the line through both ends
    np.testing.assert_allclose(filled[3:6, 2], 1.0)


def test_ends_are_carried_and_long_gaps_stay_missing():
    n = 20
    xs = np.arange(n, dtype=float) + 100
    conf = np.ones(n)
    conf[:2] = 0  # start of the clip
    conf[8:16] = 0  # 8 frames: longer than max_gap
    conf[-1] = 0  # end of the clip
    filled = fill_gaps(_track(xs, xs, conf), min_confidence=0.3, max_gap=5)[:, 0]
    np.testing.assert_allclose(filled[:2, :2], [[102, 102]] * 2)  # holds the first seen point
    np.testing.assert_allclose(filled[-1, :2], [118, 118])  # holds the last seen point
    assert (filled[8:16] == 0).all()  # missing: confidence 0, never a point drawn at (0, 0)


def _one_euro_scalar(values, seen, rate, min_cutoff, beta, d_cutoff):
    """Casiez, Roussel, Vogel (CHI 2012), one coordinate, restarted after every missing sample."""
    def alpha(cutoff):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau * rate)

    out, x_prev, dx_prev = [], None, 0.0
    for x, ok in zip(values, seen):
        if not ok:
            out.append(0.0)
            x_prev = None
            continue
        if x_prev is None:
            x_hat, dx_hat = x, 0.0
        else:
            dx = (x - x_prev) * rate
            dx_hat = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_prev
            a = alpha(min_cutoff + beta * abs(dx_hat))
            x_hat = a * x + (1 - a) * x_prev
        out.append(x_hat)
        x_prev, dx_prev = x_hat, dx_hat
    return np.array(out)


def test_one_euro_matches_the_paper():
    rng = np.random.default_rng(0)
    n = 60
    xs = np.cumsum(rng.normal(0, 8, n)) + 300
    ys = 200 + 50 * np.sin(np.arange(n) / 5) + rng.normal(0, 2, n)
    conf = np.ones(n)
    conf[30] = 0  # the filter restarts after a missing frame
    unit, fps = 480.0, 30.0
    out = one_euro(_track(xs, ys, conf), fps, min_cutoff=1.0, beta=10.0, d_cutoff=1.0, unit=unit)[:, 0]
    for axis, values in ((0, xs), (1, ys)):
        expected = _one_euro_scalar(values / unit, conf > 0, fps, 1.0, 10.0, 1.0) * unit
        np.testing.assert_allclose(out[:, axis], expected, rtol=1e-5, atol=1e-3)
    assert out[30, 2] == 0 and out[31, 0] == pytest.approx(xs[31], abs=1e-3)


def test_one_euro_keeps_still_points_and_reduces_jitter():
    rng = np.random.default_rng(1)
    n = 90
    still = np.full(n, 250.0)
    out = one_euro(_track(still, still, np.ones(n)), 30.0, 1.0, 10.0, 1.0, unit=480.0)[:, 0]
    np.testing.assert_allclose(out[:, :2], 250.0, atol=1e-3)
    noisy = still + rng.normal(0, 3, n)
    smooth = one_euro(_track(noisy, noisy, np.ones(n)), 30.0, 1.0, 10.0, 1.0, unit=480.0)[:, 0, 0]
    assert np.std(smooth[10:] - 250) < 0.5 * np.std(noisy[10:] - 250)


def test_clean_keeps_the_sequence_shape():
    rng = np.random.default_rng(2)
    n = 12
    body = np.concatenate([rng.uniform(0, 100, (n, 20, 2)), np.ones((n, 20, 1))], axis=-1)
    body[4:6, 3, 2] = 0  # a short gap
    pose = PoseSequence(body, np.zeros((n, 2, 21, 3)), np.zeros((n, 70, 3)), 100, 100, fps=30.0)
    cleaned = clean(pose, CleanSettings(smooth=False))
    assert cleaned.body.shape == pose.body.shape and (cleaned.body[4:6, 3, 2] == 1).all()
    assert (cleaned.hands == 0).all()  # nothing is invented where nothing was seen
    with pytest.raises(ValueError, match="invalid clean settings"):
        CleanSettings(min_cutoff=0)
