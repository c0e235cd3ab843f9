"""LoRA application speed: one DiT forward with a LoRA merged into the weights against the same
LoRA applied on the fly (low-rank matmuls per call), and the base model without LoRA.

Wan2.1-1.3B widths (dim 1536, FFN 8960) with random weights and a rank-64 LoRA on every block
linear layer (as the lightx2v distillation LoRAs); on CPU a few layers and a small latent, on a
GPU the full 30 layers at 480p 81 frames.

    python -m bench.lora_speed [--quick]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from kinema.core.dit import load_dit
from kinema.core.lora import apply_loras, lora_from_tensors

from .timing import Row, interleaved_medians, print_table

RANK = 64
BLOCK_LINEARS = {"self_attn.q": (1536, 1536), "self_attn.k": (1536, 1536), "self_attn.v": (1536, 1536),
                 "self_attn.o": (1536, 1536), "cross_attn.q": (1536, 1536), "cross_attn.k": (1536, 1536),
                 "cross_attn.v": (1536, 1536), "cross_attn.o": (1536, 1536), "ffn.0": (8960, 1536),
                 "ffn.2": (1536, 8960)}


def _base_dit(layers: int, device: torch.device, dtype: torch.dtype):
    from diffusers import WanTransformer3DModel  # bench-only dependency, builds the random model

    torch.manual_seed(0)
    model = WanTransformer3DModel(num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                                  text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=layers)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return load_dit(folder, dtype=dtype, device=device, compute_dtype=dtype)


def random_lora(layers: int):
    g = torch.Generator().manual_seed(1)
    tensors = {}
    for block in range(layers):
        for name, (rows, cols) in BLOCK_LINEARS.items():
            key = f"diffusion_model.blocks.{block}.{name}"
            tensors[f"{key}.lora_down.weight"] = torch.randn(RANK, cols, generator=g) * 0.01
            tensors[f"{key}.lora_up.weight"] = torch.randn(rows, RANK, generator=g) * 0.01
            tensors[f"{key}.alpha"] = torch.tensor(float(RANK))
    return lora_from_tensors(tensors, "random rank-64 LoRA")


def run(quick: bool, device: torch.device, dtype: torch.dtype, rounds: int) -> tuple[list[Row], dict[str, float]]:
    gpu = device.type == "cuda"
    layers, latent = (30, (21, 60, 104)) if gpu else ((2, (3, 16, 16)) if quick else (4, (5, 32, 32)))
    base = _base_dit(layers, device, dtype)
    lora = random_lora(layers)
    start = time.perf_counter()
    merged = apply_loras(base, [(lora, 1.0)], "merge")
    merge_s = time.perf_counter() - start
    on_the_fly = apply_loras(base, [(lora, 1.0)], "on_the_fly")
    f, h, w = latent
    x = torch.randn(1, 16, f, h, w, device=device, dtype=dtype)  # [B, C, T, H, W]
    t = torch.tensor([500.0], device=device)
    context = torch.randn(1, 512, 4096, device=device, dtype=dtype)  # [B, 512, text_dim]
    with torch.inference_mode():
        calls = {name: (lambda m=m: m(x, t, context)) for name, m in
                 (("base", base), ("merged", merged), ("on_the_fly", on_the_fly))}
        difference = (calls["merged"]().float() - calls["on_the_fly"]().float()).abs().max().item()
        medians = interleaved_medians(calls, device, rounds)
    tokens = f * (h // 2) * (w // 2)
    case = f"1.3B widths, {layers} layers, L={tokens}, rank {RANK}"
    rows = [Row("lora", f"on the fly vs merged, {case}", medians["on_the_fly"], medians["merged"],
                f"base (no LoRA) {medians['base']:.4f} s; merging took {merge_s:.2f} s; "
                f"max|merged - on the fly| {difference:.1e}")]
    return rows, {"lora_on_the_fly_over_merged": rows[0].ratio}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lora_speed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rows, summary = run(args.quick, device, dtype, args.rounds)
    print_table(rows)
    print("summary: " + " ".join(f"{k}={v:.2f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
