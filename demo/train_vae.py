"""Train the demo's tiny Wan2.1-architecture VAE on procedural clips.

    python -m kinema.demo.train_vae [--resume] [--steps N]

The network is Kinema's own `WanVAENetwork` (so the exported file loads with `load_vae`), run
through the same chunking as `WanVAE` (frame 0 alone, then 4 frames; decode one latent frame at
a time), with gradients. Loss: pixel MSE + L1 on whole 17-frame clips (the causal caches are
recurrent state: a VAE trained on shorter windows drifted to wrong colours in later chunks), with
object pixels weighted 10x (unweighted, small moving objects faded to the background colour).
Latents get Gaussian noise plus a small L2 pull, a VAE with a fixed posterior variance: the
decoder learns to tolerate the imprecise latents a diffusion model produces.

Export folds the measured latent mean/std into the 1x1x1 convs around the latent, so with
Wan2.1's published normalisation constants (what `load_vae` applies to a 16-channel VAE) the
demo's normalised latents have zero mean and unit variance per channel.
"""
from __future__ import annotations

import argparse
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core.vae.blocks import AttentionBlock, ResidualBlock
from ..core.vae.cache import CausalCache
from ..core.vae.config import WAN21_LATENT_MEAN, WAN21_LATENT_STD, VAEConfig
from ..core.vae.network import WanVAENetwork
from . import dataset
from .files import DEMO_MODEL, RUNS, VAE_FILE
from .training import (RunDir, Timer, add_run_arguments, checkpoint, ema_update, open_run, save_safetensors,
                       start_or_resume, step_generator)

# 64x64 px -> 8x8 latent, 17 frames -> 5; narrow stages (8/16/32/32 channels) are plenty for flat shapes.
DEMO_VAE = VAEConfig("2.1", 16, 8, 8, (1, 2, 4, 4), 1, (False, True, True), 1, WAN21_LATENT_MEAN, WAN21_LATENT_STD)

LATENT_NOISE = 0.1  # std of the noise added to normalised latents while training
LATENT_L2 = 1e-3
OBJECT_WEIGHT = 10.0  # loss weight of object pixels relative to background pixels


def _stats(cfg: VAEConfig) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, cfg.z_dim, 1, 1, 1)
    return torch.tensor(cfg.latents_mean).view(shape), torch.tensor(cfg.latents_std).view(shape)


def encode(network: WanVAENetwork, video: torch.Tensor) -> torch.Tensor:
    """[B, 3, 1+4k, H, W] in [-1, 1] -> normalised latents [B, z, 1+k, h, w], differentiable."""
    cache = CausalCache()
    bounds = [0, 1, *range(5, video.shape[2] + 1, 4)]
    raw = torch.cat([network.encode_chunk(video[:, :, a:b], cache) for a, b in zip(bounds[:-1], bounds[1:])], dim=2)
    mean, std = _stats(network.config)
    return (raw - mean) / std


def decode(network: WanVAENetwork, latents: torch.Tensor) -> torch.Tensor:
    """Normalised latents -> video [B, 3, 1+4(T-1), H, W] (not clamped), differentiable."""
    mean, std = _stats(network.config)
    raw = latents * std + mean
    cache = CausalCache()
    return torch.cat([network.decode_chunk(raw[:, :, i : i + 1], cache) for i in range(raw.shape[2])], dim=2)


def training_batch(seed: int, step: int, batch: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops of random clips (held-out combinations included: the VAE learns pixels, not
    captions): video [B, 3, T, crop, crop] in [-1, 1] and per-pixel loss weights [B, 1, T, crop, crop]."""
    rng = np.random.default_rng([seed, step])
    clips, backgrounds = [], []
    for _ in range(batch):
        spec = dataset.sample_spec(rng)
        video = dataset.render(spec)
        y, x = rng.integers(0, dataset.SIZE - crop + 1, size=2)
        clips.append(dataset.to_model_range(video[:, y : y + crop, x : x + crop]))
        backgrounds.append(torch.tensor(dataset.PALETTE[spec.background]) / 127.5 - 1)
    video = torch.stack(clips)
    background = torch.stack(backgrounds).view(batch, 3, 1, 1, 1)
    # Objects cover ~5% of the pixels but carry everything the captions talk about: weight them up.
    on_object = (video - background).abs().amax(dim=1, keepdim=True) > 0.05
    return video, 1.0 + (OBJECT_WEIGHT - 1.0) * on_object.float()


def build_network(seed: int) -> WanVAENetwork:
    """Initialised so the signal survives the depth: torch's default conv init shrinks activations
    ~1.7x per layer and its random biases then dominate, so after a dozen layers every clip maps
    to nearly the same latent and training stalls. Here weights are N(0, 1/fan_in), biases zero,
    and every residual branch (the last conv of a residual block, the attention output) starts at
    zero, so the untrained network is a short chain of convolutions through the shortcuts."""
    torch.manual_seed(seed)
    network = WanVAENetwork(DEMO_VAE)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, fan_in**-0.5)
                module.bias.zero_()
        for module in network.modules():
            if isinstance(module, ResidualBlock):
                module.residual[6].weight.zero_()
            elif isinstance(module, AttentionBlock):
                module.proj.weight.zero_()
    return network


def calibration_videos(count: int = 16) -> torch.Tensor:
    rng = np.random.default_rng(12345)
    return torch.stack([dataset.to_model_range(dataset.render(dataset.sample_spec(rng))) for _ in range(count)])


@torch.no_grad()
def export(network: WanVAENetwork, path=VAE_FILE, videos: Optional[torch.Tensor] = None) -> dict[str, float]:
    """Save `network` with the latent statistics of `videos` (default: 16 calibration clips) folded in."""
    videos = calibration_videos() if videos is None else videos
    latents = torch.cat([encode(network, v) for v in videos.split(8)])  # [N, z, T, h, w]
    mean = latents.mean(dim=(0, 2, 3, 4))  # [z], in Wan-normalised units
    std = latents.std(dim=(0, 2, 3, 4))
    tensors = {k: v.clone() for k, v in network.state_dict().items()}
    fold_latent_stats(tensors, mean, std, network.config)
    save_safetensors(tensors, path, metadata={"kinema": "demo VAE (Wan2.1 architecture)"})
    return {"latent_mean_abs": float(mean.abs().mean()), "latent_std_mean": float(std.mean())}


def fold_latent_stats(tensors: dict[str, torch.Tensor], mean: torch.Tensor, std: torch.Tensor, cfg: VAEConfig) -> None:
    """Rewrite conv1 (mean half) and conv2 so that normalised latents become (z - mean) / std.

    Encoder side: mu' = m + (mu - m - s*mean) / std, with (m, s) Wan's constants, so
    (mu' - m) / s = ((mu - m) / s - mean) / std. Decoder side: conv2 gets back mu from mu'
    (mu = std*mu' + m*(1 - std) + s*mean) folded into its weights, so decoding is unchanged.
    """
    z = cfg.z_dim
    m, s = torch.tensor(cfg.latents_mean), torch.tensor(cfg.latents_std)
    a = 1.0 / std  # [z]
    w1, b1 = tensors["conv1.weight"], tensors["conv1.bias"]  # [2z, 2z, 1, 1, 1], [2z]
    w1[:z] *= a.view(z, 1, 1, 1, 1)
    b1[:z] = a * b1[:z] + m - a * (m + s * mean)
    w2, b2 = tensors["conv2.weight"], tensors["conv2.bias"]  # [z, z, 1, 1, 1], [z]
    offset = m * (1 - std) + s * mean  # [z]
    b2 += (w2[:, :, 0, 0, 0] * offset).sum(dim=1)
    w2 *= std.view(1, z, 1, 1, 1)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the demo VAE.")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    # Convolutions do not care about the frame size: most steps train on 32x32 crops (4x cheaper),
    # the last ones on whole frames so the mid-block attention sees the full 8x8 latent.
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--full-frames-from", type=float, default=0.9, help="fraction of the run")
    add_run_arguments(parser, run="vae")
    args = parser.parse_args(argv)

    run = open_run(args, RUNS)
    network = build_network(args.seed)
    optimizer = torch.optim.AdamW(network.parameters(), lr=args.lr, weight_decay=0.0)
    ema, step, _ = start_or_resume(run, network, optimizer, args.resume)

    timer = Timer(60 * args.checkpoint_minutes)
    while step < args.steps:
        crop = dataset.SIZE if step >= args.full_frames_from * args.steps else args.crop
        video, weight = training_batch(args.seed, step, args.batch, crop)
        latents = encode(network, video)
        noisy = latents + LATENT_NOISE * torch.randn(latents.shape, generator=step_generator(args.seed, step))
        recon = decode(network, noisy)
        error = recon - video  # [B, 3, T, H, W]
        mse = (weight * error.square()).mean() / weight.mean()
        l1 = (weight * error.abs()).mean() / weight.mean()
        loss = mse + 0.5 * l1 + LATENT_L2 * latents.pow(2).mean()
        # Cosine decay to 10% over the run.
        lr = args.lr * (0.55 + 0.45 * np.cos(np.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        ema_update(ema, network, 0.995)
        step += 1
        if step % 10 == 0:
            run.log(f"step {step} loss {loss.item():.4f} mse {mse.item():.5f} l1 {l1.item():.4f} "
                    f"latent_std {latents.std().item():.3f} lr {lr:.2e}")
        if timer.due() or step == args.steps:
            run.save(checkpoint(network, optimizer, ema, step, args), step)
            export_ema(network, ema, run, step)


def export_ema(network: WanVAENetwork, ema: dict[str, torch.Tensor], run: RunDir, step: int) -> None:
    shipped = WanVAENetwork(DEMO_VAE)
    shipped.load_state_dict({**network.state_dict(), **ema})
    stats = export(shipped)
    run.log(f"exported EMA weights at step {step} to {VAE_FILE.relative_to(DEMO_MODEL.parent)} {stats}")


if __name__ == "__main__":
    main()
