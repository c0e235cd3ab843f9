"""`load_vae`: any Wan VAE file -> a ready `WanVAE`, its config read from the tensor shapes."""
from __future__ import annotations

import os
import re
from typing import Optional

import torch

from ..checkpoints.io import CheckpointError, read_config_json, read_state_dict
from .config import PUBLISHED_LATENT_STATS, VAEConfig
from .layouts import to_official
from .model import WanVAE
from .network import WanVAENetwork


def load_vae(path: str | os.PathLike, dtype: Optional[torch.dtype] = None, device="cpu") -> WanVAE:
    """Load a Wan2.1 or Wan2.2 VAE from an official .pth, a ComfyUI .safetensors or a diffusers folder.

    `dtype` is the compute dtype (default float32, as the official code decodes); the weights are
    converted to it whatever they were stored in.
    """
    state = read_state_dict(path, subfolder_hints=("vae",))
    tensors = to_official(state.tensors, state.source)
    config = infer_config(tensors, state.source, read_config_json(state.source))
    with torch.device("meta"):
        network = WanVAENetwork(config)
    expected = set(network.state_dict())
    missing, unexpected = sorted(expected - tensors.keys()), sorted(tensors.keys() - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{state.source}: does not match the Wan {config.version} VAE its shapes describe "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); the file may be truncated or another model"
        )
    dtype = dtype or torch.float32
    network.load_state_dict({k: v.to(dtype) for k, v in tensors.items()}, assign=True, strict=True)
    return WanVAE(network.to(device=device))


def infer_config(tensors: dict[str, torch.Tensor], source: str, diffusers_config: Optional[dict] = None) -> VAEConfig:
    """The VAEConfig that official-named `tensors` describe."""
    version = "2.2" if "decoder.upsamples.0.upsamples.0.residual.2.weight" in tensors else "2.1"
    z_dim = tensors["conv2.weight"].shape[0]
    base_dim, image_channels = tensors["encoder.conv1.weight"].shape[:2]
    patch_size = {3: 1, 12: 2}.get(image_channels)
    if patch_size is None:
        raise CheckpointError(f"{source}: encoder takes {image_channels} channels; a Wan VAE takes 3 (or 12 patched)")
    stages = _encoder_stages(tensors, version)
    num_res_blocks = len(stages[0][0])
    widths = [tensors[blocks[-1]].shape[0] for blocks, _ in stages]
    dim_mult = tuple(w // base_dim for w in widths)
    temporal = tuple(f"{resample}.time_conv.weight" in tensors for _, resample in stages[:-1])
    decoder_base_dim = tensors["decoder.head.2.weight"].shape[1] // dim_mult[0]
    mean, std = _latent_stats(z_dim, source, diffusers_config)
    return VAEConfig(version, z_dim, base_dim, decoder_base_dim, dim_mult, num_res_blocks, temporal, patch_size,
                     mean, std)


def _encoder_stages(tensors, version):
    """Per encoder stage: (weight keys of its residual blocks' second conv, resampler prefix or None)."""
    if version == "2.2":
        stages = []
        for i in sorted({int(m[1]) for k in tensors if (m := re.match(r"encoder\.downsamples\.(\d+)\.", k))}):
            prefix = f"encoder.downsamples.{i}.downsamples"
            blocks = sorted(k for k in tensors if re.fullmatch(re.escape(prefix) + r"\.\d+\.residual\.6\.weight", k))
            resample = f"{prefix}.{len(blocks)}"
            stages.append((blocks, resample if f"{resample}.resample.1.weight" in tensors else None))
        return stages
    # 2.1: one flat list; resamplers end the stages.
    stages, blocks = [], []
    indices = sorted({int(m[1]) for k in tensors if (m := re.match(r"encoder\.downsamples\.(\d+)\.", k))})
    for i in indices:
        prefix = f"encoder.downsamples.{i}"
        if f"{prefix}.resample.1.weight" in tensors:
            stages.append((blocks, prefix))
            blocks = []
        else:
            blocks.append(f"{prefix}.residual.6.weight")
    stages.append((blocks, None))
    return stages


def _latent_stats(z_dim: int, source: str, diffusers_config: Optional[dict]):
    if (diffusers_config or {}).get("_class_name") == "AutoencoderKLWan" and diffusers_config.get("latents_mean"):
        return tuple(diffusers_config["latents_mean"]), tuple(diffusers_config["latents_std"])
    if z_dim not in PUBLISHED_LATENT_STATS:
        raise CheckpointError(f"{source}: no published latent mean/std for a {z_dim}-channel VAE (Wan2.1 has 16, "
                              f"Wan2.2 has 48); give a diffusers folder whose config.json has latents_mean/std")
    return PUBLISHED_LATENT_STATS[z_dim]
