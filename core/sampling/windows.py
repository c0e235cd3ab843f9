"""Where the context windows sit on the latent time axis, and how much each one counts per frame."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    start: int  # first latent frame
    end: int  # one past the last latent frame

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_windows(frames: int, window: int, overlap: int) -> list[Window]:
    """Windows of `window` frames every `window - overlap` frames; the last one ends flush with the clip.

    A clip no longer than one window is a single window covering it (plain sampling).
    """
    if frames <= window:
        return [Window(0, frames)]
    stride = window - overlap
    starts = list(range(0, frames - window, stride)) + [frames - window]
    return [Window(s, s + window) for s in starts]


def _shape(length: int, before: int, after: int, blend: str) -> torch.Tensor:
    """Unnormalised weight of each frame of one window [length] (float64)."""
    position = torch.arange(length, dtype=torch.float64)
    if blend == "flat":
        return torch.ones(length, dtype=torch.float64)
    if blend == "pyramid":
        # Triangle peaking in the middle: a frame trusts the window that sees it most centrally.
        return torch.minimum(position + 1, length - position)
    weights = torch.ones(length, dtype=torch.float64)  # linear: ramps across the overlaps only
    if before:
        weights[:before] = (torch.arange(before, dtype=torch.float64) + 1) / (before + 1)
    if after:
        weights[length - after:] = torch.arange(after, 0, -1, dtype=torch.float64) / (after + 1)
    return weights


def blend_coefficients(windows: list[Window], frames: int, blend: str,
                       excluded: frozenset[tuple[int, int]] = frozenset()) -> list[torch.Tensor]:
    """Per window, float32 [length]: its share of each frame's velocity; shares of a frame sum to 1.

    `excluded` holds (window index, frame in window) pairs whose output must not count (frames a
    window only sees as given context). A frame covered once gets exactly 1.0, so one window
    reproduces plain sampling bit for bit.
    """
    raw = []
    for k, w in enumerate(windows):
        before = windows[k - 1].end - w.start if k > 0 else 0
        after = w.end - windows[k + 1].start if k + 1 < len(windows) else 0
        weights = _shape(w.length, max(before, 0), max(after, 0), blend)
        for j in range(w.length):
            if (k, j) in excluded:
                weights[j] = 0
        raw.append(weights)
    total = torch.zeros(frames, dtype=torch.float64)
    for w, weights in zip(windows, raw):
        total[w.start:w.end] += weights
    if (total == 0).any():
        missing = torch.nonzero(total == 0).flatten().tolist()
        raise ValueError(f"latent frames {missing} are covered by no window; raise the overlap.")
    return [(weights / total[w.start:w.end]).float() for w, weights in zip(windows, raw)]
