"""Seconds per sampling step on 1 GPU against N GPUs (Ulysses, or ring where the heads do not divide),
at the 480p and 720p 81-frame latent sizes: `python -m bench.parallel [--gpus N] [--model 1.3b|14b]`.

One step = the conditional and the unconditional DiT call. The model has the preset's widths and
random bf16 weights (the same on every rank: one seed), so no checkpoint is needed. It needs CUDA
and at least two GPUs; anywhere else it prints why it skipped and exits 0. `--smoke` runs the same
code on 2 CPU processes (gloo) with a tiny model and latent, to check the bench itself.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

MODELS = {"1.3b": dict(dim=1536, ffn_dim=8960, num_layers=30, num_heads=12),
          "14b": dict(dim=5120, ffn_dim=13824, num_layers=40, num_heads=40),
          "smoke": dict(dim=64, ffn_dim=128, num_layers=2, num_heads=4)}
SIZES = {"480p": (21, 60, 104), "720p": (21, 90, 160)}  # latent (frames, height, width) of 81 frames
SMOKE_SIZES = {"tiny": (3, 6, 10)}


def _worker(rank: int, world: int, port: int, model: str, steps: int, results) -> None:
    import torch.distributed as dist

    from kinema.core.dit.config import DiTConfig
    from kinema.core.dit.model import WanDiT
    from kinema.core.parallel import ParallelPlan, parallelize, start

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    smoke = model == "smoke"
    device, dtype = (torch.device("cpu"), torch.float32) if smoke else (torch.device("cuda", rank), torch.bfloat16)
    if not smoke:
        torch.cuda.set_device(device)
    config = DiTConfig(in_dim=16, out_dim=16, text_dim=64 if smoke else 4096, **MODELS[model])
    torch.manual_seed(0)
    with torch.device(device):
        dit = WanDiT(config, compute_dtype=dtype)
        for p in dit.parameters():
            torch.nn.init.normal_(p, std=0.02)
    dit = dit.to(dtype)
    if world > 1:
        heads = config.num_heads
        plan = ParallelPlan(ulysses=world) if heads % world == 0 else ParallelPlan(ring=world)
        dist.init_process_group("gloo" if smoke else "nccl")
        parallelize(dit, start(plan, device))
    text = [torch.randn(64, config.text_dim, device=device)]
    for label, (f, h, w) in (SMOKE_SIZES if smoke else SIZES).items():
        x = torch.randn(1, 16, f, h, w, device=device)
        context = dit.prepare_context(text, device=device)
        with torch.no_grad():
            for step in range(steps + 1):  # the first step warms up
                if step == 1:
                    _synchronize(device)
                    began = time.perf_counter()
                for _ in range(2):  # conditional + unconditional
                    dit(x, torch.tensor([900.0], device=device), context)
            _synchronize(device)
        if rank == 0:
            results[label] = (time.perf_counter() - began) / steps
    if world > 1:
        dist.destroy_process_group()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(world: int, model: str, steps: int) -> dict:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(world, port, model, steps, results), nprocs=world)
        return dict(results)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parallel", description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=None, help="GPUs of the parallel run (default: all)")
    parser.add_argument("--model", choices=sorted(MODELS), default="1.3b")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="check the bench on 2 CPU processes, tiny model")
    args = parser.parse_args(argv)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if args.smoke:
        model, gpus, units = "smoke", 2, ("CPU process", "CPU processes")
    elif count < 2:
        print(f"bench.parallel skipped: it compares 1 GPU with several and this machine has {count} CUDA GPU(s)")
        return 0
    else:
        model, gpus, units = args.model, min(args.gpus or count, count), ("GPU", "GPUs")
    single, multi = _measure(1, model, args.steps), _measure(gpus, model, args.steps)
    for label in single:
        print(f"{model} {label}: 1 {units[0]} {single[label]:.2f} s/step, {gpus} {units[1]} {multi[label]:.2f} s/step "
              f"(x{single[label] / multi[label]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
