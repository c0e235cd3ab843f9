"""Upscale through pixels: decode a chunk, resize it, encode it, one chunk at a time.

Decode yields the first latent frame's single video frame and then 4 frames per latent frame,
which is exactly the chunking the causal encoder wants, so each decoded chunk goes straight
back in and only one chunk of pixels is ever in memory, whatever the video's length.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..progress import SILENT, Progress
from ..vae.tiling import TiledStream, Tiling, auto_tile
from .latent_interp import check_latents, upscaled_size

# An optional step on each decoded chunk before it is resized, e.g. a restorer: [B, 3, t, H, W] -> same shape.
PixelStep = Callable[[torch.Tensor], torch.Tensor]


def resize_video(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[B, 3, t, H, W] in [-1, 1] -> [B, 3, t, *size], bicubic (antialiased when shrinking), clamped.

    torch's interpolate covers what kornia's resize would do here (kornia wraps the same call),
    so kornia is not a dependency.
    """
    b, c, t, h, w = video.shape
    frames = video.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # [B*t, 3, H, W]
    shrinking = size[0] < h or size[1] < w
    out = F.interpolate(frames.float(), size=size, mode="bicubic", align_corners=False, antialias=shrinking)
    return out.clamp_(-1, 1).reshape(b, t, c, *size).permute(0, 2, 1, 3, 4)


class StreamingEncoder:
    """Encodes a video handed over in chunks (1 frame, then 4 at a time) with one causal cache.

    The concatenated outputs equal `vae.encode` of the whole video.
    """

    def __init__(self, vae, height: int, width: int, batch: int = 1, tiling: Optional[Tiling] | str = "auto"):
        cfg, s = vae.config, vae.config.spatial_stride
        if height % s or width % s:
            raise ValueError(f"the VAE encodes sizes divisible by {s}; got {height}x{width}.")
        if tiling == "auto":
            tiling = auto_tile(cfg, (height // s, width // s), batch, vae.dtype, vae.device)
        tile, overlap = (None, 0) if tiling is None else (tiling.tile // s, tiling.overlap // s)
        self.vae = vae
        self.stream = TiledStream(height // s, width // s, tile, overlap, in_scale=s, out_scale=1)
        shape = (1, cfg.z_dim, 1, 1, 1)
        self.mean = torch.tensor(cfg.latents_mean, dtype=torch.float32, device=vae.device).view(shape)
        self.std = torch.tensor(cfg.latents_std, dtype=torch.float32, device=vae.device).view(shape)
        self.frames_seen = 0

    def __call__(self, chunk: torch.Tensor) -> torch.Tensor:
        """Pixels [B, 3, t, H, W] in [-1, 1] -> normalised latents float32 [B, z, t', h, w]."""
        stride = self.vae.config.temporal_stride
        expected = "1 frame" if self.frames_seen == 0 else f"a multiple of {stride} frames"
        n, first = chunk.shape[2], self.frames_seen == 0
        if (first and n != 1) or (not first and n % stride):
            raise ValueError(f"the causal encoder takes the first frame alone, then {stride} frames at a time; "
                             f"got a chunk of {n} where {expected} was expected.")
        self.frames_seen += n
        pieces = [chunk] if first else list(chunk.split(stride, dim=2))
        latents = []
        for piece in pieces:
            with torch.inference_mode():
                raw = self.stream(piece.to(self.vae.device, self.vae.dtype), self.vae.network.encode_chunk)
            # the VAE may have moved since construction (ComfyUI moves it onto the GPU only while it runs)
            latents.append((raw.float() - self.mean.to(raw.device)) / self.std.to(raw.device))
        return torch.cat(latents, dim=2)


def vae_upscale(vae, latents: torch.Tensor, scale: float, *, tiling: Optional[Tiling] | str = "auto",
                pixel_step: Optional[PixelStep] = None, progress: Progress = SILENT) -> torch.Tensor:
    """Latents [B, C, T, h, w] -> [B, C, T, h', w'] (h', w' = `upscaled_size`), streamed over time."""
    check_latents(latents)
    b, c, t, h, w = latents.shape
    size = upscaled_size(h, w, scale)
    s = vae.config.spatial_stride
    encoder = StreamingEncoder(vae, size[0] * s, size[1] * s, b, tiling)
    out = torch.empty(b, c, t, *size, dtype=torch.float32)
    done = 0
    for chunk in vae.iter_decode(latents, tiling=tiling, chunk_frames=1, progress=progress):  # [B, 3, n, H, W]
        if pixel_step is not None:
            chunk = pixel_step(chunk)
        z = encoder(resize_video(chunk, (size[0] * s, size[1] * s)))  # [B, C, n', h', w']
        out[:, :, done:done + z.shape[2]] = z.to(out.device)
        done += z.shape[2]
    return out
