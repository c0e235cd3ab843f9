"""Train the demo's tiny Wan-architecture DiT with flow matching in the demo VAE's latent space.

    python -m kinema.demo.train_dit [--resume] [--steps N]

Needs the demo VAE and text encoder files (train_vae, text_encoder). The model is Kinema's own
`WanDiT`, so the exported file loads with `load_dit`. Recipe: x_t = (1 - t) x0 + t noise, target
noise - x0 (Wan's convention), t ~ logit-normal, 10% empty captions (the unconditional branch of
classifier-free guidance), AdamW, EMA of the weights (the EMA is what ships). Every step's data
and noise depend only on (seed, step), and checkpoints are written every few minutes, so a run
stopped at any time continues with `--resume` exactly where it was.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn

from ..core.dit.config import DiTConfig
from ..core.dit.model import WanDiT
from ..core.sampling.schedules import shift_sigmas
from ..core.text import load_text_encoder
from ..core.vae import load_vae
from . import dataset
from .finetune_decoder import encoder_sha256
from .latent_pool import LatentPool
from .files import DIT_FILE, RUNS, TEXT_FILE, VAE_FILE
from .text_encoder import DEMO_UMT5
from .training import (RunDir, Timer, add_run_arguments, checkpoint, ema_update, open_run, save_safetensors,
                       start_or_resume, step_generator)

# 16x5x8x8 latents -> 5x4x4 = 80 tokens. head_dim 32 is not Wan's 128 and text_len 32 is not its
# 512, so the shipped config.json tells load_dit both. Captions are at most ~21 tokens; padding
# them to 512 rows (as Wan does) made the cross-attention keys cost more than the rest of the
# model, so the demo pads to 32 (2.5x faster training steps).
DEMO_DIT = DiTConfig(dim=128, ffn_dim=512, num_layers=6, num_heads=4, in_dim=16, out_dim=16,
                     text_dim=DEMO_UMT5.d_model, text_len=32)
CAPTION_DROPOUT = 0.1


def official_config_json(c: DiTConfig) -> dict:
    """Wan's own config.json fields (what load_dit reads to learn the head count)."""
    return {"_class_name": "WanModel", "model_type": "t2v", "dim": c.dim, "ffn_dim": c.ffn_dim, "freq_dim": c.freq_dim,
            "in_dim": c.in_dim, "num_heads": c.num_heads, "num_layers": c.num_layers, "out_dim": c.out_dim,
            "text_len": c.text_len, "eps": c.eps}


def clip_weight(spec: dataset.ClipSpec, direction_weight: float) -> float:
    """Relative sampling weight of a pool clip: single-object clips moving in a straight line weigh
    `direction_weight` times the others. Motion direction is the attribute the tiny model learns
    last (it needs the object kept whole across frames); every other clip still appears."""
    straight = len(spec.objects) == 1 and spec.objects[0].motion in dataset.DIRECTIONS
    return direction_weight if straight else 1.0


def build_dit(seed: int) -> WanDiT:
    """adaLN-Zero style start: every block's gated branches, the ungated cross-attention output and
    the head are zero, so the untrained model is the identity path and predicts zero velocity."""
    torch.manual_seed(seed)
    model = WanDiT(DEMO_DIT)
    for name, p in model.named_parameters():
        if name.endswith("bias") or "modulation" in name:
            nn.init.zeros_(p)
        elif "norm" in name:
            nn.init.ones_(p)  # RMSNorm / affine LayerNorm gains
        else:
            nn.init.xavier_uniform_(p.view(p.shape[0], -1))
    with torch.no_grad():
        model.time_projection[1].weight.zero_()
        model.head.head.weight.zero_()
        for block in model.blocks:
            block.cross_attn.o.weight.zero_()
        for layer in (model.time_embedding[0], model.time_embedding[2]):
            nn.init.normal_(layer.weight, std=0.02)
    return model


def velocity(model: WanDiT, x: torch.Tensor, t: torch.Tensor, context: list[torch.Tensor]) -> torch.Tensor:
    """The model's forward with gradients (the DiT is grad-neutral: inference callers turn them off)."""
    return model(x, t, context)


def export(model: WanDiT, ema: dict[str, torch.Tensor], path=DIT_FILE) -> None:
    state = {**model.state_dict(), **ema}
    save_safetensors(state, path, metadata={"kinema": "demo DiT (Wan architecture)"})
    config = path.parent / "config.json"
    tmp = config.with_suffix(".tmp")
    tmp.write_text(json.dumps(official_config_json(DEMO_DIT), indent=2) + "\n")
    tmp.replace(config)


def start(run: RunDir, model: WanDiT, optimizer, args) -> tuple[dict, int, int, str]:
    """(EMA weights, step, step the learning-rate warmup counts from, run whose latent pool to use):
    resumed from the run's own checkpoint, started from another run's (--init-from), or fresh."""
    ema, step, state = start_or_resume(run, model, optimizer, args.resume)
    if state is not None:
        # A run started --init-from another keeps that run's latent pool, resumed or not.
        pool_run = state.get("pool_run", state["args"].get("init_from") or args.init_from or args.run)
        return ema, step, state.get("warmup_start", 0), pool_run
    if not args.init_from:
        return ema, step, 0, args.run
    source = RunDir(RUNS / args.init_from).latest()
    if source is None:
        raise SystemExit(f"--init-from {args.init_from}: {RUNS / args.init_from} holds no checkpoint")
    model.load_state_dict(source["model"])
    run.log(f"started from {args.init_from} at step {source['step']} (its args: {source['args']})")
    return source["ema"], source["step"], source["step"], args.init_from


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Train the demo DiT.")
    parser.add_argument("--steps", type=int, default=30000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--ema", type=float, default=0.9995)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pool-start", type=int, default=1024, help="clips encoded before the first step")
    parser.add_argument("--pool-max", type=int, default=40960)
    parser.add_argument("--pool-growth", type=int, default=16, help="clips added every --pool-every steps")
    parser.add_argument("--pool-every", type=int, default=16)
    parser.add_argument("--t-shift", type=float, default=2.0,
                        help="shift applied to the logit-normal noise levels, as the sampler shifts its schedule "
                             "(the demo samples with shift 2): more training where the layout and motion are decided")
    parser.add_argument("--direction-weight", type=float, default=3.0,
                        help="sampling weight of single-object straight-line clips relative to the others")
    parser.add_argument("--init-from", default=None, metavar="RUN",
                        help="start a new run from the weights, EMA and step of RUN's latest checkpoint (and use its "
                             "latent pool); the learning rate warms up again")
    add_run_arguments(parser, run="dit")
    args = parser.parse_args(argv)

    run = open_run(args, RUNS)
    vae = load_vae(VAE_FILE)
    text_encoder = load_text_encoder(TEXT_FILE)

    model = build_dit(args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    ema, step, warmup_start, pool_run = start(run, model, optimizer, args)
    pool = LatentPool(RUNS / pool_run / "pool", vae, encoder_sha256(VAE_FILE), args.seed)
    while len(pool) < args.pool_start:
        pool.grow(min(64, args.pool_start - len(pool)))
    run.log(f"pool ready: {len(pool)} clips; model {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    timer = Timer(60 * args.checkpoint_minutes)
    smoothed, started, first_step = None, time.time(), step
    weights: list[float] = []  # clip_weight of pool clip i
    p = np.zeros(0)  # sampling probabilities of the pool's clips, rebuilt when the pool grows
    model.train()
    while step < args.steps:
        if step % args.pool_every == 0 and len(pool) < args.pool_max:
            pool.grow(args.pool_growth)
        rng = np.random.default_rng([args.seed, step])
        gen = step_generator(args.seed, step)
        if len(weights) < len(pool):
            weights.extend(clip_weight(s, args.direction_weight) for s in pool.specs[len(weights):])
            p = np.asarray(weights)
            p = p / p.sum()
        x0, specs = pool.batch(rng.choice(len(pool), size=args.batch, p=p))  # [B, z, T, h, w]
        captions = ["" if rng.random() < CAPTION_DROPOUT else dataset.caption(s, rng) for s in specs]
        context = [c.clone() for c in text_encoder.encode(captions)]  # out of inference mode, for autograd
        t = torch.sigmoid(torch.randn(args.batch, generator=gen))  # logit-normal noise level in (0, 1)
        t = torch.from_numpy(shift_sigmas(t.numpy(), args.t_shift))  # Wan's shift: towards 1
        noise = torch.randn(x0.shape, generator=gen)
        tb = t.view(-1, 1, 1, 1, 1)
        x_t = (1 - tb) * x0 + tb * noise
        loss = (velocity(model, x_t, t * 1000, context) - (noise - x0)).pow(2).mean()

        lr = args.lr * min(1.0, (step - warmup_start + 1) / args.warmup)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema_update(ema, model, min(args.ema, (1 + step) / (10 + step)))
        step += 1

        smoothed = loss.item() if smoothed is None else 0.98 * smoothed + 0.02 * loss.item()
        if step % 25 == 0:
            rate = (step - first_step) / (time.time() - started)
            run.log(f"step {step} loss {smoothed:.4f} grad {grad_norm:.2f} lr {lr:.1e} pool {len(pool)} "
                    f"{rate:.2f} steps/s")
        if timer.due() or step == args.steps:
            run.save(checkpoint(model, optimizer, ema, step, args, warmup_start=warmup_start,
                                pool_run=pool_run), step)
            export(model, ema)
            run.log(f"checkpoint + exported EMA weights at step {step}")


if __name__ == "__main__":
    main()
