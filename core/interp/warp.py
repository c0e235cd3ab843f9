"""Motion-compensated in-betweens from two frames and their flows, in plain torch (any device).

For an output time t in (0, 1) every output pixel x needs its source p in frame 0, the point whose
motion carries it to x by time t: p + t * F01(p) = x. We solve this by fixed-point iteration
(p <- x - t * F01(p)), which converges wherever motion is smooth and fails to settle exactly where
content appears or disappears; the same for frame 1 with (1 - t) and F10. Each side is then trusted
by (a) how well its equation was solved and (b) the forward/backward consistency of the flow at its
source (F01(p) + F10(p + F01(p)) ~ 0 unless p is covered in the other frame), and the two warped
frames are mixed with those weights times the usual (1 - t, t) time weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

INVERSION_STEPS = 8
TRUST_PIXELS = 3.0  # mismatch (pixels) at which a side's weight halves; ~1 px (flow noise, soft edges) barely counts
MIN_TRUST = 1e-3  # where both sides fail, fall back to the plain time-weighted blend


def sample(image: torch.Tensor, offset: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """image [B, C, H, W] read at (x, y) + offset [B, 2, H, W] (pixels), edges repeated -> [B, C, H, W]."""
    _, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=image.device, dtype=offset.dtype),
                            torch.arange(w, device=image.device, dtype=offset.dtype), indexing="ij")
    gx = (xs + offset[:, 0]) * (2 / max(w - 1, 1)) - 1  # [B, H, W], align_corners=True normalisation
    gy = (ys + offset[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([gx, gy], dim=-1)  # [B, H, W, 2]
    return F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)


def invert_motion(flow: torch.Tensor, t: float, steps: int = INVERSION_STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets d [B, 2, H, W] with p = x + d solving p + t * flow(p) = x, and the residual |.| [B, 1, H, W]."""
    offset = -t * flow  # first step from p = x
    for _ in range(steps - 1):
        offset = -t * sample(flow, offset)
    residual = (offset + t * sample(flow, offset)).norm(dim=1, keepdim=True)
    return offset, residual


def consistency_error(flow_ab: torch.Tensor, flow_ba: torch.Tensor) -> torch.Tensor:
    """|F_ab(p) + F_ba(p + F_ab(p))| [B, 1, H, W] in frame a's pixels: large where p is hidden in frame b."""
    return (flow_ab + sample(flow_ba, flow_ab)).norm(dim=1, keepdim=True)


@dataclass(frozen=True)
class FlowPair:
    """Two frames [1, 3, H, W] with their flows [1, 2, H, W] and flow-consistency errors [1, 1, H, W]."""

    frame0: torch.Tensor
    frame1: torch.Tensor
    flow01: torch.Tensor
    flow10: torch.Tensor
    error0: torch.Tensor
    error1: torch.Tensor

    @classmethod
    def from_flows(cls, frame0, frame1, flow01, flow10) -> "FlowPair":
        return cls(frame0, frame1, flow01, flow10, consistency_error(flow01, flow10), consistency_error(flow10, flow01))

    def at(self, t: float) -> torch.Tensor:
        """The in-between frame at time t in (0, 1) -> [1, 3, H, W]."""
        offset0, residual0 = invert_motion(self.flow01, t)
        offset1, residual1 = invert_motion(self.flow10, 1 - t)
        warped0 = sample(self.frame0, offset0, mode="bicubic")
        warped1 = sample(self.frame1, offset1, mode="bicubic")
        weight0 = (1 - t) * _trust(residual0 + sample(self.error0, offset0))
        weight1 = t * _trust(residual1 + sample(self.error1, offset1))
        mixed = (weight0 * warped0 + weight1 * warped1) / (weight0 + weight1)
        return mixed.clamp_(0, 1)


def _trust(mismatch: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + (mismatch / TRUST_PIXELS) ** 2) + MIN_TRUST
