"""Tiny random Wan VAEs saved in each real file layout, for tests and benchmarks.

The model is diffusers' `AutoencoderKLWan` (the independent reference). The official names are
produced here by their own small table (written from the Wan code, not from Kinema's mapping),
so a wrong rule in `core/vae/layouts.py` cannot cancel itself out.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch

NUM_RES_BLOCKS = 2
TINY_FRAME = {"2.1": (24, 40), "2.2": (32, 48)}  # non-square pixel sizes that fit each stride


def tiny_diffusers_vae(version: str = "2.1", seed: int = 0):
    """A small random AutoencoderKLWan with the real block structure (4 stages, mid attention)."""
    from diffusers import AutoencoderKLWan

    from kinema.core.vae.config import WAN22_LATENT_MEAN, WAN22_LATENT_STD

    torch.manual_seed(seed)
    if version == "2.1":
        model = AutoencoderKLWan(base_dim=8, z_dim=16, num_res_blocks=NUM_RES_BLOCKS)
    elif version == "2.2":
        model = AutoencoderKLWan(
            base_dim=8, decoder_base_dim=12, z_dim=48, num_res_blocks=NUM_RES_BLOCKS, is_residual=True,
            in_channels=12, out_channels=12, patch_size=2, scale_factor_spatial=16,
            latents_mean=list(WAN22_LATENT_MEAN), latents_std=list(WAN22_LATENT_STD),
        )
    else:
        raise ValueError(version)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma"):  # ones by default: perturb so a misplaced norm shows
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def official_state_dict(model, version: str) -> dict[str, torch.Tensor]:
    """diffusers keys -> the official Wan names (Wan2.1 `vae.py` / Wan2.2 `vae2_2.py`)."""
    up_stage = NUM_RES_BLOCKS + 1  # residual blocks per decoder stage
    out = {}
    for key, value in model.state_dict().items():
        k = key
        k = re.sub(r"^quant_conv\.", "conv1.", k)
        k = re.sub(r"^post_quant_conv\.", "conv2.", k)
        k = k.replace(".conv_in.", ".conv1.").replace(".norm_out.", ".head.0.").replace(".conv_out.", ".head.2.")
        k = k.replace(".mid_block.attentions.0.", ".middle.1.")
        k = k.replace(".mid_block.resnets.0.", ".middle.0.").replace(".mid_block.resnets.1.", ".middle.2.")
        if version == "2.1":
            k = re.sub(r"^encoder\.down_blocks\.", "encoder.downsamples.", k)
            k = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
                       lambda m: f"decoder.upsamples.{int(m[1]) * (up_stage + 1) + int(m[2])}.", k)
            k = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                       lambda m: f"decoder.upsamples.{int(m[1]) * (up_stage + 1) + up_stage}.", k)
        else:
            k = re.sub(r"^encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.downsamples.\1.downsamples.", k)
            k = re.sub(r"^encoder\.down_blocks\.(\d+)\.downsampler\.",
                       rf"encoder.downsamples.\1.downsamples.{NUM_RES_BLOCKS}.", k)
            k = re.sub(r"^decoder\.up_blocks\.(\d+)\.resnets\.", r"decoder.upsamples.\1.upsamples.", k)
            k = re.sub(r"^decoder\.up_blocks\.(\d+)\.upsampler\.", rf"decoder.upsamples.\1.upsamples.{up_stage}.", k)
        for old, new in ((".norm1.", ".residual.0."), (".conv1.", ".residual.2."), (".norm2.", ".residual.3."),
                         (".conv2.", ".residual.6."), (".conv_shortcut.", ".shortcut.")):
            if re.search(r"\.(downsamples|upsamples|middle)\.[\d.]*\d\." + re.escape(old[1:]), k):
                k = k.replace(old, new)
        out[k] = value.clone()
    return out


def save_tiny_vae(directory, version: str = "2.1", layout: str = "official_pth", dtype=torch.float32,
                  seed: int = 0) -> Path:
    """Save `tiny_diffusers_vae(version, seed)` in `layout`; returns the path to give `load_vae`.

    layouts: "official_pth" (Wan2.x_VAE.pth, official names), "comfy" (.safetensors, official
    names, as Comfy-Org repackages them), "diffusers" (save_pretrained folder).
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = tiny_diffusers_vae(version, seed)
    if dtype != torch.float32:
        model = model.to(dtype)
    if layout == "diffusers":
        folder = directory / f"tiny_wan{version}_vae_diffusers"
        model.save_pretrained(folder)
        return folder
    tensors = official_state_dict(model, version)
    if layout == "official_pth":
        path = directory / f"Wan{version.replace('.', '_')}_VAE_tiny.pth"
        torch.save(tensors, path)
    elif layout == "comfy":
        path = directory / f"wan_{version.replace('.', '_')}_vae_tiny.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    else:
        raise ValueError(f"unknown layout {layout!r}")
    return path
