"""`python -m bench [--quick] [--only attention,dit] [--threads N] [--rounds N]`: prints one table of
our times against the references' (ratio = ours / reference) and a final `summary:` line."""
from __future__ import annotations

import argparse
import os
import platform
import signal
import sys

import torch

from . import attention_sparse, dit_step, lora_speed, memory, native, step_cache
from .timing import print_table

# Each section: run(quick, device, dtype, rounds) -> (rows, summary figures; None = not measured).
SECTIONS = {"attention": attention_sparse.run, "dit": dit_step.run, "lora": lora_speed.run, "cache": step_cache.run,
            "native": native.run, "memory": memory.run}
# The tracked figures (`summary: sparse_speedup=<x> dit_ratio=<y>`) come from these two; the LoRA and
# step-cache and native (vs ComfyUI's own WanModel) sections add their own keys when asked for with --only.
DEFAULT_SECTIONS = ("attention", "dit")


def _describe(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    return f"CPU {platform.processor() or platform.machine()}, {threads} threads, torch {torch.__version__}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small CPU shapes (a few minutes on 2 cores)")
    parser.add_argument("--only", default=",".join(DEFAULT_SECTIONS),
                        help=f"comma-separated sections of {list(SECTIONS)} (default: {','.join(DEFAULT_SECTIONS)})")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per case (median reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")

    # A plain `kill` exits through Python, so sections' temporary model files are deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench: terminated"))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # fp32 on CPU (the precision the acceptance figures are stated in); bf16 on GPU, as Wan runs there.
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    rounds = args.rounds or (3 if args.quick else 5)
    print(f"kinema bench on {_describe(device, args.threads)}; {rounds} interleaved rounds, medians")

    rows, summary = [], {}
    for name in chosen:
        section_rows, section_summary = SECTIONS[name](args.quick, device, dtype, rounds)
        rows += section_rows
        summary.update(section_summary)
    print_table(rows)
    print("summary: " + " ".join(f"{key}={'n/a' if value is None else f'{value:.2f}'}" for key, value in summary.items()))


if __name__ == "__main__":
    main()
