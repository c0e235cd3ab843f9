"""Long Wan-Animate videos: overlapping clips chained in pixel space (official `wan/animate.py`).

The driving video is padded (ping-pong) to a whole number of clips of `clip_len` frames that
overlap by `overlap` frames ("refert_num", 1 or 5 in the release). Clip k > 0 starts where the
previous one ends minus the overlap; the previous clip's last `overlap` decoded frames are
VAE-encoded into its conditioning as known frames, and its first `overlap` output frames are
dropped. Output frames are handed to `sink` clip by clip, so a long video never sits in memory.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch

from ..progress import Progress
from .animate_conditioning import animate_conditioning
from .branch import BranchConditioning
from .pipeline import sample
from .settings import SamplerSettings
from .shapes import TEMPORAL_STRIDE


@dataclass(frozen=True)
class Segment:
    start: int  # first driving frame of the clip
    end: int  # one past its last driving frame
    guided: int  # leading frames taken from the previous clip's output (0 for the first clip)


def plan_segments(frames: int, clip_len: int = 77, overlap: int = 1) -> tuple[list[Segment], int]:
    """Clips covering `frames` driving frames, and the padded driving length they need."""
    if clip_len < 5 or (clip_len - 1) % TEMPORAL_STRIDE:
        raise ValueError(f"clip_len must be 4k+1 (77 in the release), got {clip_len}")
    if not 0 < overlap < clip_len:
        raise ValueError(f"overlap must be between 1 and clip_len - 1 (the release uses 1 or 5), got {overlap}")
    if frames < 1:
        raise ValueError("the driving video has no frames")
    stride = clip_len - overlap
    count = max(1, -(-(frames - overlap) // stride))  # ceil; one clip for short videos
    segments = [Segment(k * stride, k * stride + clip_len, overlap if k else 0) for k in range(count)]
    return segments, segments[-1].end


def pad_pingpong(video: torch.Tensor, length: int, dim: int = 2) -> torch.Tensor:
    """Extend a video to `length` frames by running it backwards and forwards (official inputs_padding)."""
    frames = video.shape[dim]
    if frames >= length:
        return video.narrow(dim, 0, length)
    order, i, step = [], 0, 1
    while len(order) < length:
        order.append(i)
        if frames > 1:
            if not 0 <= i + step < frames:
                step = -step
            i += step
    return video.index_select(dim, torch.tensor(order, device=video.device))


def animate_long(
    dit,
    vae,
    positive,
    negative=None,
    *,
    settings: SamplerSettings,
    reference: torch.Tensor,  # [1, 3, H, W] in [-1, 1]
    pose_video: torch.Tensor,  # [1, 3, F, H, W] in [-1, 1]
    face_video: torch.Tensor,  # [1, 3, F, h', w'] in [-1, 1]
    clip_len: int = 77,
    overlap: int = 1,
    background: Optional[torch.Tensor] = None,  # replacement mode [1, 3, F, H, W]
    character_mask: Optional[torch.Tensor] = None,  # replacement mode [1, F, H, W]
    clip_fea: Optional[torch.Tensor] = None,
    sink: Optional[Callable[[torch.Tensor], None]] = None,
    progress: Optional[Progress] = None,
    device=None,
) -> Optional[torch.Tensor]:
    """Animate `reference` along the driving videos; returns [1, 3, F, H, W] in [-1, 1], or None
    when every clip's new frames went to `sink` ([1, 3, n, H, W] each). Clip k uses seed + k."""
    frames = pose_video.shape[2]
    if face_video.shape[2] != frames:
        raise ValueError(f"the face video has {face_video.shape[2]} frames, the pose video {frames}: give one face "
                         f"crop per pose frame")
    segments, padded = plan_segments(frames, clip_len, overlap)
    drive = {"pose_video": pose_video, "face_video": face_video, "background": background,
             "character_mask": character_mask}
    drive = {k: None if v is None else pad_pingpong(v, padded, dim=2 if v.ndim == 5 else 1) for k, v in drive.items()}
    face_size = dit.config.animate.face_size
    height, width = pose_video.shape[-2:]
    stride = vae.config.spatial_stride
    kept, carry, written = [], None, 0
    for k, seg in enumerate(segments):
        clip = {key: None if v is None else (v[:, :, seg.start:seg.end] if v.ndim == 5 else v[:, seg.start:seg.end])
                for key, v in drive.items()}
        cond = animate_conditioning(vae, reference, clip["pose_video"], clip["face_video"], face_size=face_size,
                                    carry=carry, background=clip["background"],
                                    character_mask=clip["character_mask"], clip_fea=clip_fea)
        shape = (1, cond.pose_latents.shape[1], cond.y.shape[2], height // stride, width // stride)
        branch = BranchConditioning("animate", cond.model_inputs(), shape, cond.reference_frames)
        latents = sample(dit, positive, negative, settings=replace(settings, seed=settings.seed + k), branch=branch,
                         progress=progress, device=device)
        decoded = vae.decode(latents)  # [1, 3, clip_len, H, W]
        carry = decoded[:, :, -overlap:]
        new = decoded[:, :, seg.guided:][:, :, : frames - written]  # the padding beyond the video is dropped
        written += new.shape[2]
        if sink is not None:
            sink(new)
        else:
            kept.append(new.cpu())
    return None if sink is not None else torch.cat(kept, dim=2)
