"""Train the demo model's x2 latent upsampler on the demo's clips (needs the demo VAE).

    python -m kinema.demo.train_upsampler            # resumes from demo_model/runs/latent_upscale/

The training loop itself is generic (`kinema.core.upscale.training.train_upsampler`, any VAE and
any clips); this script only supplies the demo's clips and file locations.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from ..core.upscale import UpsamplerConfig
from ..core.upscale.training import ClipSource, train_upsampler
from ..core.vae import load_vae
from .dataset import SIZE, render, sample_training_spec, to_model_range
from .files import RUNS, UPSCALE_FILE, VAE_FILE


def demo_clips(batch: int, size: int, seed: int = 0) -> ClipSource:
    """Clips of the demo dataset rendered at `size` px: the same clips for the same step at any size."""

    def clips(step: int) -> torch.Tensor:
        rng = np.random.default_rng([seed, step])
        return torch.stack([to_model_range(render(sample_training_spec(rng), size=size))
                            for _ in range(batch)])  # [B, 3, T, size, size]

    return clips


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", default=str(VAE_FILE), help="the VAE whose latent space is upscaled")
    parser.add_argument("--out", default=str(UPSCALE_FILE), help="output .safetensors")
    # The resumable training state stays in the git-ignored runs/ folder; only the export ships.
    parser.add_argument("--checkpoint", default=None,
                        help="resumable training state (default: demo_model/runs/latent_upscale/<out name>.train.pt)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--mid-channels", type=int, default=48)
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the machine is shared)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    vae_file = Path(args.vae)
    if not vae_file.is_file():
        raise SystemExit(f"no VAE at {vae_file}; train the demo model's first (python -m kinema.demo.train_vae).")
    vae = load_vae(vae_file)
    out = Path(args.out)
    config = UpsamplerConfig(channels=vae.config.z_dim, mid_channels=args.mid_channels, blocks=args.blocks)
    checkpoint = Path(args.checkpoint or RUNS / "latent_upscale" / (out.stem + ".train.pt"))
    # Pairs: the demo's 64 px clips and the same clips drawn sharp at 128 px (what the DiT's 64 px
    # latents should become), not a resize of either.
    full = round(SIZE * config.scale)
    train_upsampler(vae, demo_clips(args.batch, full), out, config=config, steps=args.steps, checkpoint=checkpoint,
                    small_clips=demo_clips(args.batch, SIZE))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
