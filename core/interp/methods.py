"""Registry of frame interpolation methods: each turns two frames into a function of time t in (0, 1).

"blend" (cross-fade, no motion) and "dis_flow" (motion-compensated with OpenCV DIS optical flow,
the default) are built in. RIFE-format weights are not supported yet; asking for "rife" says so.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from .warp import FlowPair

InBetween = Callable[[float], torch.Tensor]  # t in (0, 1) -> frame [H, W, 3]
DEFAULT_METHOD = "dis_flow"
NOT_YET = {"rife": "RIFE weights are not supported yet; use 'dis_flow' (optical flow, no weights needed)"}


class Interpolator(Protocol):
    def pair(self, frame0: torch.Tensor, frame1: torch.Tensor) -> InBetween:
        """Frames float [H, W, 3] in 0..1 -> a function giving the frame at any t in (0, 1)."""


class Blend:
    """Cross-fade: (1 - t) * frame0 + t * frame1. Ghosts on motion; the baseline."""

    def pair(self, frame0: torch.Tensor, frame1: torch.Tensor) -> InBetween:
        return lambda t: torch.lerp(frame0, frame1, t)


class DISFlowInterpolator:
    """Motion-compensated in-betweens from DIS optical flow (both directions, computed once per pair)."""

    def __init__(self, preset: str = "medium"):
        from .flow import DISFlow

        self.flow = DISFlow(preset)

    def pair(self, frame0: torch.Tensor, frame1: torch.Tensor) -> InBetween:
        flow01, flow10 = self.flow(frame0, frame1)  # [H, W, 2] each, on the CPU
        flows = [f.permute(2, 0, 1)[None].to(frame0.device, frame0.dtype) for f in (flow01, flow10)]  # [1, 2, H, W]
        images = [f.permute(2, 0, 1)[None] for f in (frame0, frame1)]  # [1, 3, H, W]
        pair = FlowPair.from_flows(*images, *flows)
        return lambda t: pair.at(t)[0].permute(1, 2, 0)  # [H, W, 3]


METHODS: dict[str, Callable[..., Interpolator]] = {"blend": Blend, "dis_flow": DISFlowInterpolator}


def get_interpolator(method: str = DEFAULT_METHOD, **options) -> Interpolator:
    """An interpolator by name ("blend", "dis_flow"); options go to its constructor (e.g. preset="fast")."""
    if method in NOT_YET:
        raise ValueError(f"frame interpolation method {method!r}: {NOT_YET[method]}")
    if method not in METHODS:
        raise ValueError(f"unknown frame interpolation method {method!r}; use one of {', '.join(METHODS)}")
    return METHODS[method](**options)
