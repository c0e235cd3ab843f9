"""Latent upscaling of Wan latents: direct interpolation, a streamed VAE round trip, a learned upsampler."""
from .latent_interp import MODES, SCALES, interpolate_latents, upscaled_size
from .learned import LatentUpsampler, UpsamplerConfig, load_upsampler, save_upsampler
from .vae_roundtrip import StreamingEncoder, resize_video, vae_upscale

__all__ = ["LatentUpsampler", "MODES", "SCALES", "StreamingEncoder", "UpsamplerConfig", "interpolate_latents",
           "load_upsampler", "resize_video", "save_upsampler", "upscaled_size", "vae_upscale"]
