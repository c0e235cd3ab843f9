"""A small learned latent upsampler for Wan latents, and its .safetensors file format.

Per latent frame: conv -> residual blocks -> pixel-shuffle upsampling -> conv, added to a bicubic
resize of the input. The network only learns the detail bicubic misses, and its last conv starts
at zero, so an untrained model is exactly bicubic. It works on Kinema's normalised latents (what
KinemaSampler returns), one frame at a time, so long videos stream through it in chunks.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..checkpoints.io import CheckpointError
from .latent_interp import check_latents, upscaled_size

FORMAT = "kinema_latent_upsampler"
TRAIN_HINT = ("train one with `python -m kinema.demo.train_upsampler` (the demo model's) or, for any VAE and your "
              "own clips, `kinema.core.upscale.training.train_upsampler`")


@dataclass(frozen=True)
class UpsamplerConfig:
    channels: int = 16  # latent channels (16 Wan2.1 VAE, 48 Wan2.2 VAE)
    mid_channels: int = 64
    blocks: int = 4  # residual blocks before and after the upsampling
    scale: float = 2.0  # 2.0, or 1.5 (x3 pixel shuffle, then resized down to the even target size)

    def __post_init__(self):
        if self.scale not in (1.5, 2.0):
            raise ValueError(f"learned upsamplers are x1.5 or x2, got scale {self.scale!r}.")
        if self.mid_channels < 8 or self.mid_channels % 8:
            raise ValueError(f"mid_channels must be a multiple of 8 (GroupNorm groups), got {self.mid_channels}.")

    @property
    def shuffle(self) -> int:
        return 2 if self.scale == 2.0 else 3


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, channels), nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(8, channels), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class LatentUpsampler(nn.Module):
    def __init__(self, config: UpsamplerConfig):
        super().__init__()
        c, m, r = config.channels, config.mid_channels, config.shuffle
        self.config = config
        self.conv_in = nn.Conv2d(c, m, 3, padding=1)
        self.blocks_low = nn.Sequential(*[ResBlock(m) for _ in range(config.blocks)])
        self.upsample = nn.Sequential(nn.Conv2d(m, m * r * r, 3, padding=1), nn.PixelShuffle(r))
        self.blocks_high = nn.Sequential(*[ResBlock(m) for _ in range(config.blocks)])
        self.conv_out = nn.Conv2d(m, c, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Latent frames [N, C, h, w] -> [N, C, h', w'] (h', w' = `upscaled_size`)."""
        size = upscaled_size(frames.shape[-2], frames.shape[-1], self.config.scale)
        base = F.interpolate(frames, size=size, mode="bicubic", align_corners=False)
        detail = self.blocks_high(self.upsample(self.blocks_low(self.conv_in(frames))))  # [N, m, r*h, r*w]
        if detail.shape[-2:] != size:
            detail = F.interpolate(detail, size=size, mode="area")
        return base + self.conv_out(detail)

    @torch.no_grad()
    def upscale_video(self, latents: torch.Tensor, chunk_frames: int = 8) -> torch.Tensor:
        """[B, C, T, h, w] -> [B, C, T, h', w'], `chunk_frames` latent frames at a time."""
        check_latents(latents)
        b, c, t, h, w = latents.shape
        if c != self.config.channels:
            raise ValueError(f"this latent upsampler was made for {self.config.channels}-channel latents, got {c} "
                             f"({_family(c)}); load the upsampler trained for that model's VAE.")
        size = upscaled_size(h, w, self.config.scale)
        device, dtype = self.conv_in.weight.device, self.conv_in.weight.dtype
        out = torch.empty(b, c, t, *size, dtype=torch.float32)
        for start in range(0, t, chunk_frames):
            chunk = latents[:, :, start:start + chunk_frames]  # [B, C, n, h, w]
            n = chunk.shape[2]
            frames = chunk.permute(0, 2, 1, 3, 4).reshape(b * n, c, h, w).to(device, dtype)
            big = self(frames).float().reshape(b, n, c, *size).permute(0, 2, 1, 3, 4)
            out[:, :, start:start + n] = big.to(out.device)
        return out


def _family(channels: int) -> str:
    return {16: "Wan2.1 VAE latents", 48: "Wan2.2 VAE latents"}.get(channels, "not a Wan latent")


def save_upsampler(model: LatentUpsampler, path: Union[str, os.PathLike], *, replace: bool = False) -> Path:
    """Write the model atomically (temp name + rename); an existing file is kept unless `replace`."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not replace:
        raise FileExistsError(f"{path} already exists; Kinema never overwrites a file. Choose another name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "config": json.dumps(asdict(model.config))})
    tmp.chmod(0o644)  # safetensors creates owner-only files; a model file is for every user of the machine
    os.replace(tmp, path)
    return path


def load_upsampler(path: Union[str, os.PathLike], device="cpu") -> LatentUpsampler:
    """Read a Kinema latent upsampler .safetensors; clear errors for other kinds of files."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"latent upsampler {path} does not exist; put it in models/latent_upscale_models/ "
                                f"or {TRAIN_HINT}.")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: latent upsamplers are read from .safetensors files; got {path.suffix!r}.")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata, keys = f.metadata() or {}, list(f.keys())
            tensors = {k: f.get_tensor(k) for k in keys}
    except SafetensorError as error:
        raise CheckpointError(f"{path} is not a readable .safetensors file ({error}); re-download or re-train it.")
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Kinema latent upsampler: {_what_it_is(keys)}. Kinema's upsamplers "
                              f"carry the metadata format={FORMAT!r}; {TRAIN_HINT}.")
    try:
        config = UpsamplerConfig(**json.loads(metadata["config"]))
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its upsampler config metadata is unreadable ({error}); re-export the file.")
    model = LatentUpsampler(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(keys)), sorted(set(keys) - expected)
    if missing or unexpected:
        raise CheckpointError(f"{path}: tensors do not match its config {config}: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}; the file is damaged or from another version.")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: tensor shapes do not match its config {config}: {error}")
    return model.eval().requires_grad_(False).to(device)


def _what_it_is(keys: list[str]) -> str:
    if any(k.startswith(("res_blocks.", "upsampler.", "initial_conv.")) for k in keys):
        return "it looks like an LTX-Video latent upsampler, which works on LTX latents only, not Wan's"
    return f"it has no Kinema upsampler metadata (first keys: {keys[:3]})"
