"""Branch conditioning (Wan2.1 VACE, Wan2.2 Animate): extra DiT inputs beside the text, and how each
of them runs along the clip's time axis, so that a context window can take its own slice.

Both branches put reference frames in front of the video in latent time (VACE: one latent frame per
reference image; Animate: the character photo's slot). Those frames belong to every window, like a
prompt does, and are dropped after sampling.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .shapes import TEMPORAL_STRIDE

BRANCH_KINDS = ("animate", "vace")

# How each timed branch input runs along latent time (inputs not listed, e.g. clip_fea or vace_strength,
# are the same for every frame):
#   "prefixed"     latent frames, reference frames first (y, vace_context: [B, C, P + T, h, w])
#   "video_latent" latent frames of the video only (pose_latents: [B, C, T, h, w])
#   "video_pixel"  pixel frames of the video, 4 per latent frame after the first (face_pixels: [B, 3, F, S, S])
TIME_AXES = {"y": "prefixed", "vace_context": "prefixed", "pose_latents": "video_latent", "face_pixels": "video_pixel"}

# Inputs the unguided (negative prompt) pass of cfg > 1 gets in place of the branch's own, per kind: official
# Wan-Animate feeds that pass face pixels of all -1 ("no face", `face_pixel_values * 0 - 1` in wan/animate.py),
# so guidance pushes the expression towards the driving face; every other input stays the same.
UNGUIDED_FILL = {"animate": {"face_pixels": -1.0}}


@dataclass(frozen=True, eq=False)
class BranchConditioning:
    kind: str  # "animate" or "vace"
    inputs: dict = field(repr=False)  # extra DiT inputs for batch 1 (tensors [1, ...] or plain values)
    latent_shape: tuple  # [1, C, P + T, h, w] to sample, reference frames included
    reference_frames: int  # P: leading latent frames that hold references, dropped after sampling

    def __post_init__(self) -> None:
        if self.kind not in BRANCH_KINDS:
            raise ValueError(f"unknown branch kind {self.kind!r}; expected one of {', '.join(BRANCH_KINDS)}.")
        if len(self.latent_shape) != 5 or not 0 <= self.reference_frames < self.latent_shape[2]:
            raise ValueError(f"branch latent_shape {tuple(self.latent_shape)} with {self.reference_frames} reference "
                             "frames: expected [1, C, P + T, h, w] with at least one video frame after the P references.")

    @property
    def video_frames(self) -> int:
        """Latent frames of the video itself (after the reference frames)."""
        return self.latent_shape[2] - self.reference_frames

    def window_inputs(self, batch: int, start: int, end: int, device) -> dict:
        """The DiT inputs for video latent frames [start, end) (the references kept in front), for `batch`
        videos, on `device`. The whole range gives the inputs unchanged."""
        whole = start == 0 and end == self.video_frames
        return {name: _expanded(value if whole else self._slice(name, value, start, end), batch, device)
                for name, value in self.inputs.items()}

    def unguided_inputs(self, inputs: dict) -> dict:
        """The DiT inputs of the unguided pass, from those of the guided one (`UNGUIDED_FILL`)."""
        fill = UNGUIDED_FILL.get(self.kind, {})
        return {name: torch.full_like(value, fill[name]) if name in fill else value for name, value in inputs.items()}

    def _slice(self, name: str, value, start: int, end: int):
        axis = TIME_AXES.get(name)
        if axis is None or not isinstance(value, torch.Tensor):
            return value
        p = self.reference_frames
        if axis == "prefixed":
            return torch.cat([value[:, :, :p], value[:, :, p + start:p + end]], dim=2)
        if axis == "video_latent":
            return value[:, :, start:end]
        # pixel frames: latent frame 0 holds pixel frame 0, latent frame j > 0 pixel frames 4j-3 .. 4j; a window
        # that starts later takes its first latent frame's last pixel frame as its own first frame.
        return value[:, :, TEMPORAL_STRIDE * start:TEMPORAL_STRIDE * (end - 1) + 1]


def _expanded(value, batch: int, device):
    if not isinstance(value, torch.Tensor):
        return value
    return value.to(device).expand(batch, *value.shape[1:])


def check_branch(branch: Optional[BranchConditioning], shape: tuple, partial: bool, has_image: bool) -> None:
    """A branch samples a new video of its own size: no refinement, no start image, its latent shape."""
    if branch is None:
        return
    if partial:
        raise ValueError(f"the {branch.kind} branch samples a new video from noise; set denoise to 1.0 and "
                         "start_sigma to 0 (refinement with a branch is not supported).")
    if has_image:
        raise ValueError(f"the {branch.kind} branch brings its own reference; disconnect start_image.")
    if tuple(shape[1:]) != tuple(branch.latent_shape[1:]):
        raise ValueError(f"the {branch.kind} branch was built for latents {list(branch.latent_shape[1:])} (channels, "
                         f"frames incl. {branch.reference_frames} reference, height, width) but the run has "
                         f"{list(shape[1:])}; leave the shape to the branch.")
