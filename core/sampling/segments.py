"""Long Wan-Animate videos: overlapping clips chained in pixel space (official `wan/animate.py`).

The driving video is padded (ping-pong) to a whole number of clips of `clip_len` frames that
overlap by `overlap` frames ("refert_num", 1 or 5 in the release). Clip k > 0 starts where the
previous one ends minus the overlap; the previous clip's last `overlap` decoded frames are
VAE-encoded into its conditioning as known frames, and its first `overlap` output frames are
dropped. Clip k is sampled with seed + k.

Memory stays flat in the video's length: the driving videos are read clip by clip through
`FrameSource`s (the node layer converts ComfyUI images only for the frames of one clip), only one
clip is decoded at a time (for the next clip's guidance frames), and the result is either the
clips' latents, which `ClipChain` decodes clip by clip, or decoded frames streamed to a sink.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from ..progress import SILENT, Progress
from .animate_conditioning import animate_conditioning
from .branch import BranchConditioning
from .engine import run_sampling
from .request import SamplingRequest
from .settings import SamplerSettings
from .shapes import TEMPORAL_STRIDE

SEED_SPACE = 2**64  # seeds wrap around, as the sampler's seed widget allows up to 2**64 - 1


@dataclass(frozen=True)
class Segment:
    start: int  # first driving frame of the clip (in the padded video)
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


def pingpong_order(frames: int, length: int) -> torch.Tensor:
    """Frame indices [length] running through `frames` frames forwards, backwards, forwards ... (official
    inputs_padding: 0 1 2 1 0 1 ...)."""
    order, i, step = [], 0, 1
    while len(order) < length:
        order.append(i)
        if frames > 1:
            if not 0 <= i + step < frames:
                step = -step
            i += step
    return torch.tensor(order, dtype=torch.long)


def pad_pingpong(video: torch.Tensor, length: int, dim: int = 2) -> torch.Tensor:
    """Extend a video to `length` frames by running it backwards and forwards (official inputs_padding)."""
    frames = video.shape[dim]
    if frames >= length:
        return video.narrow(dim, 0, length)
    return video.index_select(dim, pingpong_order(frames, length).to(video.device))


@dataclass(frozen=True, eq=False)
class FrameSource:
    """One driving video, read by frame index, so that only one clip of it is ever converted at a time."""

    frames: int
    read: Callable[[torch.Tensor], torch.Tensor]  # indices [n] -> [1, C, n, H, W] (masks [1, n, H, W])

    @classmethod
    def of(cls, video: torch.Tensor) -> "FrameSource":
        """A video already in memory: [1, C, F, H, W] (frames on dim 2) or a mask [1, F, H, W] (dim 1)."""
        dim = 2 if video.ndim == 5 else 1
        return cls(video.shape[dim], lambda indices: video.index_select(dim, indices.to(video.device)))


@dataclass(frozen=True, eq=False)
class AnimateDrive:
    """Everything Wan-Animate needs for a driving video of any length, read clip by clip."""

    vae: Any  # encodes the reference, pose and guidance videos; decodes each clip for the next one's guidance
    reference: torch.Tensor  # [1, 3, H, W] in [-1, 1], fitted to the video size
    pose: FrameSource  # rendered skeleton [1, 3, n, H, W] in [-1, 1]
    face: FrameSource  # face crops [1, 3, n, h', w'] in [-1, 1]
    face_size: int  # the motion encoder's crop side
    clip_len: int = 77  # frames per clip (4k+1)
    background: Optional[FrameSource] = None  # replacement mode: the scene [1, 3, n, H, W]
    character_mask: Optional[FrameSource] = None  # replacement mode: [1, n, H, W], 1 = character
    clip_fea: Optional[torch.Tensor] = None  # CLIP features of the reference

    @property
    def frames(self) -> int:
        return self.pose.frames

    def check(self) -> None:
        """Every driving video has one frame per pose frame (they are cut into the same clips)."""
        for name in ("face", "background", "character_mask"):
            source = getattr(self, name)
            if source is not None and source.frames != self.frames:
                raise ValueError(f"long Animate cuts every driving video into the same clips, but the {name} video has "
                                 f"{source.frames} frames and the pose video {self.frames}: give one {name} frame "
                                 "per pose frame (render both from the same driving video).")
        if (self.background is None) != (self.character_mask is None):
            raise ValueError("replacement mode needs both background and character_mask (or neither, for animation)")


@dataclass(frozen=True, eq=False)
class AnimateBranch(BranchConditioning):
    """An Animate clip's branch that also carries the whole driving video: a long-video run chains clips over
    all of it (`sample_chained`); any other run samples the one clip."""

    drive: Optional[AnimateDrive] = None


@dataclass(frozen=True)
class ClipChain:
    """How chained clips' latents, laid end to end on the time axis, make one video."""

    clip_latent_frames: int  # latent frames per clip (the reference slot already dropped)
    overlap: int  # leading pixel frames of every clip after the first that repeat the one before: dropped
    frames: int  # frames of the finished video (the padding beyond the driving video is dropped)

    def clips(self, latents: torch.Tensor) -> list[torch.Tensor]:
        """[B, C, n * L, h, w] -> the n clips [B, C, L, h, w]."""
        length = self.clip_latent_frames
        if latents.shape[2] % length:
            raise ValueError(f"chained Animate latents have {latents.shape[2]} frames, not a whole number of "
                             f"{length}-frame clips; decode the sampler's output as it is.")
        return list(latents.split(length, dim=2))

    def iter_decode(self, vae, latents: torch.Tensor, progress: Progress = SILENT, **options
                    ) -> Iterator[torch.Tensor]:
        """Decoded frames [B, 3, t, H, W] in [-1, 1], clip after clip (each decoded on its own, as sampled);
        `progress` counts the latent frames of all clips."""
        written, clips = 0, self.clips(latents)
        for k, clip in enumerate(clips):
            skip = self.overlap if k else 0
            for chunk in vae.iter_decode(clip, progress=_clip_progress(progress, k, len(clips)), **options):
                cut = min(skip, chunk.shape[2])
                chunk, skip = chunk[:, :, cut:][:, :, : self.frames - written], skip - cut
                if chunk.shape[2]:
                    written += chunk.shape[2]
                    yield chunk
                if written == self.frames:  # the rest is padding beyond the driving video: not decoded
                    return

    def write_video(self, vae, latents: torch.Tensor, path, fps=30, *, crf: int = 18,
                    frame_transform: Optional[Callable] = None, progress: Progress = SILENT, **options) -> Path:
        """Decode the clips ([1, C, n * L, h, w]) straight into an mp4, clip by clip, as `WanVAE.decode_to_file`
        does for one video (written under a temporary name, never over an existing file); returns the path."""
        from ..video.writer import VideoWriter

        if latents.shape[0] != 1:
            raise ValueError(f"write_video writes one video but the latents hold a batch of {latents.shape[0]}")
        frames = ((chunk[0].permute(1, 2, 3, 0) + 1.0) / 2.0  # [t, H, W, 3] in 0..1
                  for chunk in self.iter_decode(vae, latents, progress, **options))
        if frame_transform is not None:
            frames = frame_transform(frames)
        with VideoWriter(path, fps, crf=crf) as writer:
            for chunk in frames:
                writer.write(chunk)
        return writer.path

    def decode_to_images(self, vae, latents: torch.Tensor, progress: Progress = SILENT, **options) -> torch.Tensor:
        """ComfyUI IMAGE [frames, H, W, 3] in 0..1 of one video (it holds every frame: for short videos)."""
        chunks = self.iter_decode(vae, latents, progress, **options)
        return torch.cat([(chunk[0].permute(1, 2, 3, 0).cpu() + 1.0) / 2.0 for chunk in chunks])


def clip_count(drive: AnimateDrive, overlap: int) -> int:
    return len(plan_segments(drive.frames, drive.clip_len, overlap)[0])


def iter_clips(request: SamplingRequest, drive: AnimateDrive, overlap: int = 1,
               progress: Optional[Progress] = None, decode_last: bool = False
               ) -> Iterator[tuple[Segment, torch.Tensor, Optional[torch.Tensor]]]:
    """Sample the clips one after another: (segment, latents [1, C, L, h, w], decoded [1, 3, clip_len, H, W] or
    None for the last clip unless `decode_last`). The request gives the model, text, settings, step cache and
    device; its shape, latents, branch and long-video settings are the chain's own."""
    drive.check()
    if request.shape is not None and request.shape[0] != 1:
        raise ValueError(f"long Animate makes one video at a time; set the latent batch to 1 (got {request.shape[0]})")
    if request.image is not None or request.latents is not None:
        raise ValueError("long Animate samples each clip from noise with its own reference; disconnect start_image "
                         "and leave denoise at 1.0.")
    progress = progress or SILENT
    segments, padded = plan_segments(drive.frames, drive.clip_len, overlap)
    order = pingpong_order(drive.frames, padded)
    stride = drive.vae.config.spatial_stride
    height, width = drive.reference.shape[-2:]
    carry = None  # [1, 3, overlap, H, W]: the previous clip's last decoded frames
    for k, seg in enumerate(segments):
        progress.check()
        indices = order[seg.start:seg.end]
        read = lambda source: None if source is None else source.read(indices)  # noqa: E731
        cond = animate_conditioning(drive.vae, drive.reference, read(drive.pose), read(drive.face),
                                    face_size=drive.face_size, carry=carry, background=read(drive.background),
                                    character_mask=read(drive.character_mask), clip_fea=drive.clip_fea)
        shape = (1, cond.pose_latents.shape[1], cond.y.shape[2], height // stride, width // stride)
        clip = replace(request, shape=None, latents=None, long_video=None,
                       settings=replace(request.settings, seed=(request.settings.seed + k) % SEED_SPACE),
                       branch=BranchConditioning("animate", cond.model_inputs(), shape, cond.reference_frames))
        latents = run_sampling(clip, _clip_progress(progress, k, len(segments)))  # [1, C, L, h, w]
        decoded = None
        if k + 1 < len(segments) or decode_last:
            decoded = drive.vae.decode(latents)  # [1, 3, clip_len, H, W]
            carry = decoded[:, :, -overlap:]
        yield seg, latents, decoded


def sample_chained(request: SamplingRequest, drive: AnimateDrive, overlap: int = 1,
                   progress: Optional[Progress] = None) -> tuple[torch.Tensor, ClipChain]:
    """The latents of every clip laid end to end [1, C, n * L, h, w] (on the CPU) and how to decode them."""
    kept = [latents.cpu() for _, latents, _ in iter_clips(request, drive, overlap, progress)]
    return torch.cat(kept, dim=2), ClipChain(kept[0].shape[2], overlap, drive.frames)


def _clip_progress(progress: Progress, k: int, clips: int) -> Progress:
    """Clip k's steps as part of all clips' steps (one bar for the whole video)."""
    if progress.on_step is None:
        return progress
    return Progress(on_step=lambda done, total, preview: progress.on_step(k * total + done, clips * total, preview),
                    check_cancel=progress.check_cancel)


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
    source = lambda video: None if video is None else FrameSource.of(video)  # noqa: E731
    drive = AnimateDrive(vae, reference, source(pose_video), source(face_video), dit.config.animate.face_size,
                         clip_len, source(background), source(character_mask), clip_fea)
    request = SamplingRequest(dit=dit, positive=positive, negative=negative, settings=settings, device=device)
    frames, written, kept = pose_video.shape[2], 0, []
    for seg, _, decoded in iter_clips(request, drive, overlap, progress, decode_last=True):
        new = decoded[:, :, seg.guided:][:, :, : frames - written]  # the padding beyond the video is dropped
        written += new.shape[2]
        if sink is not None:
            sink(new)
        else:
            kept.append(new.cpu())
    return None if sink is not None else torch.cat(kept, dim=2)
