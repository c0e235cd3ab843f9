"""Camera zoom from visible lengths (core/pose/zoom.py) against closed forms and a dense reference."""
from __future__ import annotations

import numpy as np
import pytest

from kinema.core.pose.zoom import estimate_zoom, high_pass, local_linear


def _dense_local_linear(series: np.ndarray, sigma: float) -> np.ndarray:
    """The textbook weighted least-squares line at every frame, with an N x N weight matrix."""
    t = np.arange(len(series), dtype=float)
    offsets = t[None, :] - t[:, None]
    weights = np.exp(-0.5 * (offsets / sigma) ** 2) * (np.abs(offsets) <= np.ceil(4 * sigma))
    out = []
    for row, w in zip(offsets, weights):
        design = np.stack([np.ones_like(row), row], axis=1) * np.sqrt(w)[:, None]
        coef, *_ = np.linalg.lstsq(design, series * np.sqrt(w), rcond=None)
        out.append(coef[0])
    return np.array(out)


@pytest.mark.parametrize("frames, sigma", [(5, 4.5), (60, 4.5), (200, 12.0)])
def test_local_linear_matches_the_dense_fit(frames, sigma):
    series = np.random.default_rng(frames).normal(size=frames)
    np.testing.assert_allclose(local_linear(series, sigma), _dense_local_linear(series, sigma), atol=1e-9)
    line = np.linspace(-2, 5, frames)
    np.testing.assert_allclose(local_linear(line, sigma), line, atol=1e-9)  # a steady push-in passes unchanged


def test_zoom_is_recovered_despite_gaps_and_foreshortening():
    rng = np.random.default_rng(1)
    frames, measures = 90, 12
    zoom = 1.5 ** np.linspace(0, 1, frames)  # a push-in to 1.5x
    typical = rng.uniform(20, 120, measures)
    lengths = zoom[:, None] * typical[None, :]
    hidden = rng.random(lengths.shape) < 0.3  # 30 % of the lengths out of view
    shortened = rng.random(lengths.shape) < 0.15  # 15 % foreshortened to 40-90 %
    lengths = np.where(shortened, lengths * rng.uniform(0.4, 0.9, lengths.shape), lengths)
    lengths[hidden] = np.nan
    found, lengths_found = estimate_zoom(lengths, fps=30.0)
    ratio = found / zoom
    np.testing.assert_allclose(ratio / ratio.mean(), 1.0, atol=0.01)  # the shape of the zoom, up to a constant
    np.testing.assert_allclose(lengths_found * ratio.mean(), typical, rtol=0.02)


def test_high_pass_removes_a_pan_and_keeps_a_bounce():
    fps, frames = 30.0, 120
    t = np.arange(frames) / fps
    pan = 200.0 * t  # the camera moving steadily
    bounce = 5.0 * np.sin(2 * np.pi * 3.0 * t)  # quick movement of the person
    track = np.stack([pan + bounce, np.zeros(frames)], axis=1)
    seen = np.ones(frames, bool)
    seen[50:60] = False  # a gap: each visible run is fitted on its own
    out = high_pass(track, seen, fps, seconds=1.0)
    assert (out[~seen] == 0).all()
    inner = seen.copy()
    inner[:10] = inner[-10:] = inner[40:70] = False  # away from the ends of each run
    np.testing.assert_allclose(out[inner, 0], bounce[inner], atol=1.0)
