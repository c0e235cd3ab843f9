"""The knobs of long-video sampling, validated once when they are made."""
from __future__ import annotations

from dataclasses import dataclass

BLENDS = ("pyramid", "linear", "flat")


@dataclass(frozen=True)
class LongVideoSettings:
    """Context windows over the latent time axis (all lengths in latent frames; 1 latent = 4 video frames).

    Each window is denoised as its own short clip (so the DiT's positions never leave the range it
    was trained on) and the windows' velocities are blended where they overlap, at every step.
    """

    window: int = 21  # latent frames per window (21 = Wan's 81 video frames)
    overlap: int = 7  # latent frames shared by neighbouring windows
    blend: str = "pyramid"  # weights inside a window: pyramid (triangle), linear (ramps over overlaps), flat
    freenoise: bool = True  # every window starts from a shuffle of the first window's noise frames
    drift_strength: float = 0.0  # 0..1: pull each window's per-channel statistics towards its reference window

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(isinstance(self.window, int) and self.window >= 1,
              f"window must be an integer >= 1 latent frames, got {self.window!r}; Wan models are trained on 21 "
              "(81 video frames), the demo model on 5 (17 video frames).")
        check(isinstance(self.overlap, int) and 0 <= self.overlap < self.window,
              f"overlap must be an integer in [0, window={self.window}), got {self.overlap!r}; about a third of "
              "the window is usual (7 of 21).")
        check(self.blend in BLENDS, f"unknown blend {self.blend!r}; choose one of {', '.join(BLENDS)}.")
        check(isinstance(self.drift_strength, (int, float)) and 0 <= self.drift_strength <= 1,
              f"drift_strength must be in [0, 1], got {self.drift_strength!r}; 0 turns statistics matching off, "
              "0.1-0.3 is a gentle pull.")

    @property
    def stride(self) -> int:
        return self.window - self.overlap
