"""Train a small latent upsampler for one VAE's latent space (any VAE, any clips).

A training pair is (VAE-encode of a clip shrunk by the scale, VAE-encode of the clip itself), so
the network learns what encoding a sharper video adds beyond resizing the small latent. Training
resumes from its checkpoint (written atomically every `checkpoint_every` steps): a run can be
stopped at any time and started again with the same call. The demo model's upsampler is trained
by `python -m kinema.demo.train_upsampler`, which feeds this the demo's clips.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..progress import SILENT, Progress
from .latent_interp import upscaled_size
from .learned import LatentUpsampler, UpsamplerConfig, save_upsampler
from .vae_roundtrip import resize_video

ClipSource = Callable[[int], torch.Tensor]  # step -> clips [B, 3, T, H, W] in [-1, 1], same for the same step


def training_pair(vae, clips: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(small latents [B, C, t, h, w], target latents [B, C, t, H, W]) from clips at full size."""
    _, _, _, height, width = clips.shape
    s = vae.config.spatial_stride
    small = (round(height / scale / s) * s, round(width / scale / s) * s)
    if upscaled_size(small[0] // s, small[1] // s, scale) != (height // s, width // s):
        raise ValueError(f"clips of {width}x{height} px do not make an x{scale} pair (their latent is not the "
                         f"upscaled size of a {small[1]}x{small[0]} clip's); use sizes whose latent sides are even "
                         "and divisible by 2 for x2 (e.g. 64x64 with a stride-8 VAE).")
    with torch.no_grad():
        return vae.encode(resize_video(clips, small)), vae.encode(clips)


def _frames(latents: torch.Tensor) -> torch.Tensor:
    b, c, t, h, w = latents.shape
    return latents.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)  # [B*t, C, h, w]


def train_upsampler(vae, clips: ClipSource, out: Path, *, config: UpsamplerConfig, steps: int,
                    checkpoint: Optional[Path] = None, checkpoint_every: int = 50, lr: float = 1e-3, seed: int = 0,
                    small_clips: Optional[ClipSource] = None, progress: Progress = SILENT,
                    log: Callable[[str], None] = print) -> LatentUpsampler:
    """Train (or resume) and export the model to `out` (.safetensors); returns the trained model.

    `small_clips`: the same clips drawn natively at 1/scale of the size (a renderer can); without
    it the small clips are the full ones resized, as real footage must be."""
    out = Path(out)
    checkpoint = Path(checkpoint) if checkpoint is not None else out.with_suffix(".train.pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the same start weights every run (the checkpoint replaces them on resume)
        model = LatentUpsampler(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    step = 0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=True)
        if state["config"] != list(vars(config).values()):
            raise ValueError(f"checkpoint {checkpoint} was trained with config {state['config']}, not {config}; "
                             "delete it to start over or train with its settings.")
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step = state["step"]
        log(f"resumed from {checkpoint} at step {step}")
    model.train()
    started = time.monotonic()
    while step < steps:
        progress.check()
        if small_clips is None:
            small, target = training_pair(vae, clips(step), config.scale)
        else:
            with torch.no_grad():
                small, target = vae.encode(small_clips(step)), vae.encode(clips(step))
        prediction = model(_frames(small))
        loss = F.mse_loss(prediction, _frames(target))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        step += 1
        if step % 10 == 0 or step == steps:
            baseline = F.mse_loss(F.interpolate(_frames(small), size=target.shape[-2:], mode="bicubic"),
                                  _frames(target))
            log(f"step {step}/{steps} loss {loss.item():.5f} (bicubic {baseline.item():.5f}) "
                f"{time.monotonic() - started:.0f}s")
        if step % checkpoint_every == 0 or step == steps:
            _save_checkpoint(checkpoint, model, optimiser, step, config)
        progress.step(step, steps)
    model.eval()
    save_upsampler(model, out, replace=out.exists() and checkpoint.exists())
    return model


def _save_checkpoint(path: Path, model, optimiser, step: int, config: UpsamplerConfig) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                "config": list(vars(config).values())}, tmp)
    os.replace(tmp, path)
