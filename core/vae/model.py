"""`WanVAE`: encode videos to normalised latents and decode them back, streaming chunk by chunk.

Encode follows the reference chunking (frame 0 alone, then 4 frames at a time); decode runs one
latent frame at a time. Each chunk goes through every spatial tile with that tile's causal
cache, so memory is fixed by the frame size (and tile), never by the clip length.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import torch

from ..progress import SILENT, Progress
from .config import VAEConfig
from .heap import steady_heap
from .network import WanVAENetwork
from .tiling import TiledStream, Tiling, auto_tile

TilingArg = Union[Tiling, str, None]  # a Tiling, "auto" (tile only when memory is short) or None (never)


class WanVAE:
    def __init__(self, network: WanVAENetwork):
        self.network = network.eval().requires_grad_(False)
        self.config: VAEConfig = network.config

    @property
    def dtype(self) -> torch.dtype:
        return self.network.conv2.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.network.conv2.weight.device

    def to(self, device=None, dtype=None) -> "WanVAE":
        self.network.to(device=device, dtype=dtype)
        return self

    # --- encode ---------------------------------------------------------------------------

    def encode(self, video: torch.Tensor, *, tiling: Optional[Tiling] = None,
               progress: Progress = SILENT) -> torch.Tensor:
        """Video [B, 3, T, H, W] in [-1, 1] (T = 4k+1, H and W multiples of the spatial stride)
        -> normalised latents float32 [B, z, k+1, H/s, W/s] (the posterior mean, as the reference)."""
        self._check_video(video)
        cfg, s = self.config, self.config.spatial_stride
        b, _, t, h, w = video.shape
        tile, overlap = self._tile_in_latents(tiling)
        stream = TiledStream(h // s, w // s, tile, overlap, in_scale=s, out_scale=1)
        bounds = [0, 1] + list(range(1 + cfg.temporal_stride, t + 1, cfg.temporal_stride))
        latents = []
        for n, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
            progress.check()
            chunk = video[:, :, start:end].to(self.device, self.dtype)
            with torch.inference_mode():
                latents.append(stream(chunk, self.network.encode_chunk).float())
            progress.step(n + 1, len(bounds) - 1)
        mean, std = self._stats(torch.float32)
        return (torch.cat(latents, dim=2) - mean) / std

    # --- decode ---------------------------------------------------------------------------

    def iter_decode(self, latents: torch.Tensor, *, tiling: TilingArg = "auto", chunk_frames: int = 1,
                    progress: Progress = SILENT) -> Iterator[torch.Tensor]:
        """Yield decoded video chunks float32 [B, 3, t, H, W] in [-1, 1], in order.

        The first latent frame gives 1 video frame, every later one 4. `chunk_frames` latent
        frames after the first are decoded per step (1 = exactly the reference's order).
        """
        self._check_latents(latents)
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        b, _, t, h, w = latents.shape
        if tiling == "auto":
            tiling = auto_tile(self.config, (h, w), b, self.dtype, self.device)
        tile, overlap = self._tile_in_latents(tiling)
        stream = TiledStream(h, w, tile, overlap, in_scale=1, out_scale=self.config.spatial_stride)
        bounds = [0] + list(range(1, t, chunk_frames)) + [t]
        mean, std = self._stats(self.dtype)
        with steady_heap():  # the same buffers every chunk: keep the allocator from growing with the clip
            for start, end in zip(bounds[:-1], bounds[1:]):
                progress.check()
                z = latents[:, :, start:end].to(self.device, self.dtype) * std + mean
                with torch.inference_mode():
                    video = stream(z, self.network.decode_chunk).clamp_(-1.0, 1.0).float()
                progress.step(end, t)
                yield video

    def decode(self, latents: torch.Tensor, **options) -> torch.Tensor:
        """Normalised latents [B, z, T, h, w] -> video float32 [B, 3, 1+4(T-1), H, W] in [-1, 1]."""
        return torch.cat(list(self.iter_decode(latents, **options)), dim=2)

    def decode_to_images(self, latents: torch.Tensor, **options) -> torch.Tensor:
        """ComfyUI IMAGE batch float32 [B*frames, H, W, 3] in 0..1 (for short clips: it holds every frame)."""
        b, _, t, h, w = latents.shape
        s = self.config.spatial_stride
        images = torch.empty(b, self.config.video_frames(t), h * s, w * s, 3)
        done = 0
        for chunk in self.iter_decode(latents, **options):  # [B, 3, n, H, W]
            n = chunk.shape[2]
            images[:, done : done + n] = (chunk.permute(0, 2, 3, 4, 1).cpu() + 1.0) / 2.0
            done += n
        return images.reshape(-1, h * s, w * s, 3)

    def decode_to_file(self, latents: torch.Tensor, path: Union[str, os.PathLike], fps=16, *,
                       crf: int = 18, frame_transform: Optional[Callable] = None, **options) -> Path:
        """Decode one video ([1, z, T, h, w]) straight into an H.264 mp4, chunk by chunk; returns the path.

        The file appears only when complete (written under a temporary name, then renamed), and
        an existing file is never overwritten. `frame_transform` (e.g. core.interp.frame_rate_converter)
        maps the stream of frame chunks float [t, H, W, 3] in 0..1 to the chunks written; `fps` is then
        the rate of its output.
        """
        from ..video.writer import VideoWriter

        if latents.dim() == 5 and latents.shape[0] != 1:
            raise ValueError(f"decode_to_file writes one video but the latents hold a batch of {latents.shape[0]}; "
                             f"pass latents[i:i+1] for each video")
        frames = ((chunk[0].permute(1, 2, 3, 0) + 1.0) / 2.0 for chunk in self.iter_decode(latents, **options))
        if frame_transform is not None:
            frames = frame_transform(frames)
        with VideoWriter(path, fps, crf=crf) as writer:
            for chunk in frames:  # [n, H, W, 3] in 0..1
                writer.write(chunk)
        return writer.path

    # --- helpers --------------------------------------------------------------------------

    def _stats(self, dtype):
        shape = (1, self.config.z_dim, 1, 1, 1)
        mean = torch.tensor(self.config.latents_mean, dtype=dtype, device=self.device).view(shape)
        std = torch.tensor(self.config.latents_std, dtype=dtype, device=self.device).view(shape)
        return mean, std

    def _tile_in_latents(self, tiling: Optional[Tiling]) -> tuple[Optional[int], int]:
        if tiling is None:
            return None, 0
        if not isinstance(tiling, Tiling):
            raise TypeError(f"tiling must be a Tiling, 'auto' or None, got {tiling!r}")
        s = self.config.spatial_stride
        if tiling.tile < s:
            raise ValueError(f"tile of {tiling.tile} px is smaller than one latent position ({s} px)")
        return tiling.tile // s, tiling.overlap // s

    def _name(self) -> str:
        return f"Wan{self.config.version} VAE (z={self.config.z_dim}, stride {self.config.spatial_stride})"

    def _check_video(self, video: torch.Tensor) -> None:
        cfg, s = self.config, self.config.spatial_stride
        if not torch.is_tensor(video) or video.dim() != 5:
            raise ValueError(f"encode expects a video tensor [B, 3, T, H, W]; got "
                             f"{tuple(video.shape) if torch.is_tensor(video) else type(video).__name__}")
        b, c, t, h, w = video.shape
        if c != 3:
            hint = " (it looks channels-last: permute with video.permute(0, 4, 1, 2, 3))" if w == 3 else ""
            raise ValueError(f"encode expects 3 colour channels in dim 1 of [B, 3, T, H, W]; got {c}{hint}")
        if (t - 1) % cfg.temporal_stride:
            lo = t - (t - 1) % cfg.temporal_stride
            raise ValueError(f"the {self._name()} encodes 4k+1 frames; got {t}. Trim to {lo} or pad to "
                             f"{lo + cfg.temporal_stride} frames (e.g. repeat the last frame)")
        if h % s or w % s:
            raise ValueError(f"the {self._name()} needs height and width divisible by {s}; got {h}x{w}. "
                             f"Resize or crop to {h // s * s}x{w // s * s}")
        if not video.is_floating_point():
            raise ValueError(f"encode expects a float video in [-1, 1]; got dtype {video.dtype} "
                             f"(for uint8 frames use video.float() / 127.5 - 1)")
        lo, hi = video.min().item(), video.max().item()
        if lo < -1.5 or hi > 1.5:
            raise ValueError(f"encode expects values in [-1, 1]; got [{lo:.3g}, {hi:.3g}] "
                             f"(for 0..255 frames use video / 127.5 - 1)")

    def _check_latents(self, latents: torch.Tensor) -> None:
        z = self.config.z_dim
        if not torch.is_tensor(latents) or latents.dim() != 5:
            raise ValueError(f"decode expects latents [B, {z}, T, h, w]; got "
                             f"{tuple(latents.shape) if torch.is_tensor(latents) else type(latents).__name__}")
        c = latents.shape[1]
        if c != z:
            other = {16: " (16-channel latents come from the Wan2.1 VAE)",
                     48: " (48-channel latents come from the Wan2.2 VAE)"}.get(c, "")
            raise ValueError(f"the {self._name()} decodes {z}-channel latents; got {c}{other}. "
                             f"Use the VAE that matches the model that made these latents")
        if latents.shape[2] < 1:
            raise ValueError("decode needs at least one latent frame")
