"""How big the driving person appears in each frame, from whatever bones are visible.

Every visible length (a bone, or the face's size) is modelled as `zoom[t] * typical[m] * f`, where
`f <= 1` is foreshortening. In log space that is a sum, so alternating medians over frames and over
measures separate the camera (zoom) from the person (typical lengths) without needing any one bone
to stay visible. The zoom is then smoothed with a zero-phase local-linear fit: a push-in, which is
a straight line in log zoom, passes unchanged, while detector noise is flattened. Bones therefore
never change length because of the camera.
"""
from __future__ import annotations

import numpy as np

ROUNDS = 6  # alternations; converges in two or three on real footage
TYPICAL_PERCENTILE = 75  # a bone's own length: foreshortening only shortens, so take the upper part
MEDIAN_WINDOW = 5  # frames: removes one- and two-frame detector outliers before smoothing
SMOOTH_SECONDS = 0.3  # Gaussian sigma of the local-linear fit
MIN_MEASURES = 3  # a frame showing fewer lengths than this says too little about the zoom
BRIDGE_SECONDS = 0.5  # gaps up to this long are bridged; longer ones split the clip into separate shots


def _fill(series: np.ndarray) -> np.ndarray:
    """NaN entries of `[N]` interpolated linearly, held at the ends (all-NaN stays NaN)."""
    known = np.flatnonzero(np.isfinite(series))
    if len(known) == 0:
        return series.copy()
    return np.interp(np.arange(len(series)), known, series[known])


def _running_median(series: np.ndarray, window: int) -> np.ndarray:
    half = window // 2
    padded = np.pad(series, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)


def local_linear(series: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian-weighted local-linear fit of `[N]` (reproduces straight lines exactly)."""
    n = len(series)
    if n < 3 or sigma <= 0:
        return series.copy()
    t = np.arange(n, dtype=np.float64)
    offsets = t[None, :] - t[:, None]  # [N, N]
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    s0, s1, s2 = weights.sum(1), (weights * offsets).sum(1), (weights * offsets ** 2).sum(1)
    y0, y1 = weights @ series, (weights * offsets) @ series
    determinant = s0 * s2 - s1 ** 2
    return np.where(determinant > 1e-9, (s2 * y0 - s1 * y1) / np.maximum(determinant, 1e-9), y0 / s0)


def _smooth_runs(log_zoom: np.ndarray, fps: float) -> np.ndarray:
    """Smooths each stretch of known zoom `[N]` on its own (a long gap, e.g. the person out of view, may
    hide a cut or a camera move); short gaps are bridged, and frames outside every stretch take the
    nearest stretch's value."""
    known = np.isfinite(log_zoom)
    if not known.any():
        return np.zeros_like(log_zoom)
    bridge = max(1, round(BRIDGE_SECONDS * fps))
    indices = np.flatnonzero(known)
    breaks = np.flatnonzero(np.diff(indices) > bridge + 1)
    out = np.full_like(log_zoom, np.nan)
    for run in np.split(indices, breaks + 1):
        start, end = run[0], run[-1] + 1
        segment = _fill(log_zoom[start:end])
        window = min(MEDIAN_WINDOW, len(segment) // 2 * 2 + 1)
        out[start:end] = local_linear(_running_median(segment, window), SMOOTH_SECONDS * fps)
    nearest = indices[np.abs(np.arange(len(log_zoom))[:, None] - indices[None, :]).argmin(axis=1)]
    return np.where(np.isfinite(out), out, out[nearest])


def estimate_zoom(lengths: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """From lengths `[N, M]` (NaN = not visible): smoothed zoom `[N]` (median 1) and typical lengths `[M]`.

    A measure never visible gets a NaN typical length; frames with no visible measure get the zoom
    of their neighbours.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log(np.where(lengths > 1e-6, lengths, np.nan))  # [N, M]
    if not np.isfinite(logs).any():
        return np.ones(lengths.shape[0]), np.full(lengths.shape[1], np.nan)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows and columns are expected
        typical = np.nanmedian(logs, axis=0)  # [M]
        for _ in range(ROUNDS):
            log_zoom = np.nanmedian(logs - typical, axis=1)  # [N]
            log_zoom -= np.nanmedian(log_zoom)
            typical = np.nanmedian(logs - log_zoom[:, None], axis=0)
        log_zoom[np.isfinite(logs).sum(axis=1) < MIN_MEASURES] = np.nan
        log_zoom = _smooth_runs(log_zoom, fps)
        typical = np.nanpercentile(logs - log_zoom[:, None], TYPICAL_PERCENTILE, axis=0)
    return np.exp(log_zoom), np.exp(typical)


def high_pass(track: np.ndarray, seen: np.ndarray, fps: float, seconds: float) -> np.ndarray:
    """Movement of a point `[N, 2]` around its own slow path (zero where not `seen` `[N]`).

    The slow path is a local-linear fit over `seconds`, so camera pans, push-ins and slow drift go
    into it and quick moves (sway, bounce, a jump) stay. Each visible run is fitted on its own.
    """
    out = np.zeros_like(track, dtype=np.float64)
    edges = np.diff(np.concatenate([[0], seen.astype(np.int8), [0]]))
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        for axis in range(2):
            segment = track[start:end, axis].astype(np.float64)
            out[start:end, axis] = segment - local_linear(segment, seconds * fps)
    return out
