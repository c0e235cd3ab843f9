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

ROUNDS = 8  # alternations of each kind
TYPICAL_PERCENTILE = 75  # a bone's own length: foreshortening only shortens, so take the upper part
ROBUST_ROUNDS = 2  # bisquare re-weightings: one- and two-frame detector outliers stop counting
ROBUST_FLOOR = 0.005  # log-zoom residuals below this (0.5 %) are never treated as outliers
SMOOTH_SECONDS = 0.3  # Gaussian sigma of the local-linear fit
MIN_MEASURES = 3  # a frame showing fewer lengths than this says too little about the zoom
BRIDGE_SECONDS = 0.5  # gaps up to this long are bridged; longer ones split the clip into separate shots


def _fill(series: np.ndarray) -> np.ndarray:
    """NaN entries of `[N]` interpolated linearly, held at the ends (all-NaN stays NaN)."""
    known = np.flatnonzero(np.isfinite(series))
    if len(known) == 0:
        return series.copy()
    return np.interp(np.arange(len(series)), known, series[known])


def local_linear(series: np.ndarray, sigma: float, robust_rounds: int = 0) -> np.ndarray:
    """Zero-phase Gaussian-weighted local-linear fit of `[N]` (reproduces straight lines exactly).

    The weights are cut at 4 sigma, so a long clip costs N x window, not N x N. With
    `robust_rounds`, samples far from the fit are down-weighted and the fit repeated (Cleveland's
    LOWESS bisquare), so a few bad frames do not bend it, even at the ends of the clip.
    """
    n = len(series)
    series = series.astype(np.float64)
    if n < 3 or sigma <= 0:
        return series
    reach = int(np.ceil(4 * sigma))
    offsets = np.arange(-reach, reach + 1, dtype=np.float64)  # [W]
    kernels = [np.exp(-0.5 * (offsets / sigma) ** 2) * offsets ** k for k in range(3)]

    def window_sum(values: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        # out[i] = sum over d of values[i + d] * kernel[d] (zero beyond the ends)
        return np.convolve(values, kernel[::-1], mode="full")[reach:reach + n]

    trust = np.ones(n)
    for round_ in range(robust_rounds + 1):
        s0, s1, s2 = (window_sum(trust, kernel) for kernel in kernels)
        y0, y1 = window_sum(trust * series, kernels[0]), window_sum(trust * series, kernels[1])
        determinant = s0 * s2 - s1 ** 2
        fit = np.where(determinant > 1e-9, (s2 * y0 - s1 * y1) / np.maximum(determinant, 1e-9),
                       y0 / np.maximum(s0, 1e-12))
        if round_ < robust_rounds:
            residual = series - fit
            spread = max(float(np.median(np.abs(residual))), ROBUST_FLOOR)
            trust = np.clip(1 - (residual / (6 * spread)) ** 2, 0, None) ** 2
    return fit


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
        out[start:end] = local_linear(_fill(log_zoom[start:end]), SMOOTH_SECONDS * fps, ROBUST_ROUNDS)
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
        # Means first (they converge to the least-squares split from any start), then medians, which
        # settle on the majority of unshortened lengths and ignore the foreshortened ones.
        for average in (np.nanmean,) * ROUNDS + (np.nanmedian,) * ROUNDS:
            log_zoom = average(logs - typical, axis=1)  # [N]
            log_zoom -= np.nanmedian(log_zoom)
            typical = average(logs - log_zoom[:, None], axis=0)
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
