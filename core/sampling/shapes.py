"""Pixel video size <-> latent shape, with errors that name the nearest valid values."""
from __future__ import annotations

TEMPORAL_STRIDE = 4
SPATIAL_STRIDES = {16: 8, 48: 16}  # latent channels -> VAE spatial stride (Wan2.1 VAE, Wan2.2 VAE)
PATCH = 2  # the DiT's spatial patch: latent height/width must be even


def spatial_stride(latent_channels: int) -> int:
    if latent_channels not in SPATIAL_STRIDES:
        raise ValueError(f"unknown latent channel count {latent_channels}; Wan latents have 16 (Wan2.1 VAE) "
                         "or 48 (Wan2.2 VAE, TI2V-5B) channels.")
    return SPATIAL_STRIDES[latent_channels]


def check_video_size(frames: int, height: int, width: int, latent_channels: int) -> None:
    """Frames 4k+1; height and width multiples of 16 (16-ch latents) or 32 (48-ch latents)."""
    for name, value in (("frames", frames), ("height", height), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if (frames - 1) % TEMPORAL_STRIDE:
        lower = frames - (frames - 1) % TEMPORAL_STRIDE
        raise ValueError(f"frames must be 4k+1 (1, 5, ..., 81, ...), got {frames}; nearest valid: "
                         f"{lower} or {lower + TEMPORAL_STRIDE}.")
    multiple = spatial_stride(latent_channels) * PATCH
    for name, value in (("height", height), ("width", width)):
        if value % multiple:
            lower = value - value % multiple
            options = f"{lower} or {lower + multiple}" if lower else f"{multiple}"
            raise ValueError(f"{name} must be a multiple of {multiple} for {latent_channels}-channel latents, "
                             f"got {value}; nearest valid: {options}.")


def latent_shape(frames: int, height: int, width: int, latent_channels: int, batch: int = 1
                 ) -> tuple[int, int, int, int, int]:
    """[B, C, (frames-1)/4+1, height/stride, width/stride] after validating the size."""
    check_video_size(frames, height, width, latent_channels)
    stride = spatial_stride(latent_channels)
    return (batch, latent_channels, (frames - 1) // TEMPORAL_STRIDE + 1, height // stride, width // stride)
