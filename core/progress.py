"""How long core loops (sampling steps, VAE decode chunks, training) report progress and stop.

Core never knows ComfyUI: the node layer builds a `Progress` whose hooks drive ComfyUI's
ProgressBar and raise ComfyUI's interrupt exception; scripts get a tqdm bar. Every long loop
calls `progress.step(...)` once per unit of work, which first checks for cancellation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch


class Cancelled(RuntimeError):
    """Raised between units of work when the user asked to stop."""


@dataclass(frozen=True)
class Progress:
    # (done, total, preview) after each unit; preview is a latent `[B,C,T,H,W]` or None.
    on_step: Optional[Callable[[int, int, Optional[torch.Tensor]], None]] = None
    # Raises (Cancelled, or the host's own interrupt exception) when the user asked to stop.
    check_cancel: Optional[Callable[[], None]] = None

    def check(self) -> None:
        if self.check_cancel is not None:
            self.check_cancel()

    def step(self, done: int, total: int, preview: Optional[torch.Tensor] = None) -> None:
        self.check()
        if self.on_step is not None:
            self.on_step(done, total, preview)


SILENT = Progress()


def tqdm_progress(desc: str, total: int) -> tuple[Progress, Callable[[], None]]:
    """A Progress that drives a tqdm bar for scripts; returns it and a close function."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, leave=False)

    def on_step(done: int, total_: int, _preview) -> None:
        bar.total = total_
        bar.n = done
        bar.refresh()

    return Progress(on_step=on_step), bar.close
