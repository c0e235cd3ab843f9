"""Sharpen the demo VAE's decoder with its encoder frozen, so the latent space stays the same.

    python -m kinema.demo.finetune_decoder [--resume] [--steps N]

The VAE was trained on 32x32 crops with noisy latents (what a diffusion model's imprecise output
needs), which left reconstructions at ~24 dB PSNR. This pass trains only the decoder side
(`decoder.*`, `conv2.*`) on whole 64x64 clips with less latent noise. The encoder side
(`encoder.*`, `conv1.*`, where the latent statistics are folded in) is untouched, so every latent
the DiT was trained on, and the DiT itself, stay valid: the DiT's latent pool is keyed by
`encoder_sha256`, which this pass does not change.
"""
from __future__ import annotations

import argparse
import hashlib

import numpy as np
import torch
from safetensors.torch import load_file

from ..core.vae.network import WanVAENetwork
from .files import RUNS, VAE_FILE
from .train_vae import DEMO_VAE, decode, encode, training_batch
from .training import (Timer, add_run_arguments, checkpoint, ema_update, open_run, save_safetensors, start_or_resume,
                       step_generator)

DECODER_SIDE = ("decoder.", "conv2.")


def is_decoder_side(name: str) -> bool:
    return name.startswith(DECODER_SIDE)


def encoder_sha256(path=VAE_FILE) -> str:
    """Hash of the tensors that make latents (names and bytes, in name order): what latents depend on."""
    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(str(path)).items()):
        if not is_decoder_side(name):
            digest.update(name.encode())
            digest.update(tensor.contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Fine-tune the demo VAE's decoder (encoder frozen).")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--latent-noise", type=float, default=0.05, help="std of noise on normalised latents")
    parser.add_argument("--seed", type=int, default=1)  # not the VAE run's seed: other clips
    add_run_arguments(parser, run="vae_decoder")
    args = parser.parse_args(argv)

    run = open_run(args, RUNS)
    start_file = run.path / "start_vae.safetensors"  # the VAE as it was before this pass (what resumes build on)
    if not start_file.exists():
        save_safetensors(load_file(str(VAE_FILE)), start_file)
    network = WanVAENetwork(DEMO_VAE)
    network.load_state_dict(load_file(str(start_file)))
    trained = [p for name, p in network.named_parameters() if is_decoder_side(name)]
    for name, p in network.named_parameters():
        p.requires_grad_(is_decoder_side(name))
    optimizer = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.0)
    ema, step, _ = start_or_resume(run, network, optimizer, args.resume)

    timer = Timer(60 * args.checkpoint_minutes)
    while step < args.steps:
        video, weight = training_batch(args.seed, step, args.batch, crop=64)  # [B, 3, 17, 64, 64]
        with torch.no_grad():
            latents = encode(network, video)  # [B, 16, 5, 8, 8], the frozen encoder
        noise = torch.randn(latents.shape, generator=step_generator(args.seed, step))
        error = decode(network, latents + args.latent_noise * noise) - video
        mse = (weight * error.square()).mean() / weight.mean()
        loss = mse + 0.5 * (weight * error.abs()).mean() / weight.mean()
        lr = args.lr * (0.55 + 0.45 * np.cos(np.pi * step / args.steps))  # cosine to 10%
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        ema_update(ema, network, 0.99)
        step += 1
        if step % 10 == 0:
            run.log(f"step {step} loss {loss.item():.4f} mse {mse.item():.5f} lr {lr:.2e}")
        if step == args.steps:  # export before the last checkpoint: a finished checkpoint means a shipped file
            shipped = {**network.state_dict(), **{k: v for k, v in ema.items() if is_decoder_side(k)}}
            save_safetensors(shipped, VAE_FILE, metadata={"kinema": "demo VAE (Wan2.1 architecture), decoder fine-tuned"})
            run.log(f"exported the EMA decoder at step {step} to {VAE_FILE.name}")
        if timer.due() or step == args.steps:
            run.save(checkpoint(network, optimizer, ema, step, args), step)


if __name__ == "__main__":
    main()
