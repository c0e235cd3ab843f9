"""Private memory of loading a scaled-fp8 Wan DiT with a 16/32-bit weight dtype, before any forward.

    python -m bench.fp8_load_memory [--preset 14B] [--layers N] [--dtype bf16] [--folder DIR]

Writes a random-weight file of the release's shapes (`bench.big_checkpoint`, ComfyUI
`*_fp8_scaled` layout; ~14 GB for 14B) into a temporary folder, loads it with `load_dit(path,
dtype=...)` in a fresh process, and deletes it afterwards, also on failure or Ctrl-C. Private
memory is RssAnon (`bench.private_memory`: not the page cache of the memory-mapped file),
sampled every millisecond while loading. The weights must stay fp8 and memory-mapped: the
check passes when the peak stays under 10% of the file size.
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from .private_memory import PeakPrivate, private_bytes

BOUND = 0.10  # peak private memory / file size
DTYPES = ("fp32", "bf16", "fp16")


def _child(path: str, dtype_name: str) -> None:
    import torch

    from kinema.core.dit import load_dit

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    before = private_bytes()
    start = time.perf_counter()
    with PeakPrivate() as sampler:
        model = load_dit(path, dtype=dtype)
    seconds = time.perf_counter() - start
    linear = model.blocks[0].ffn[0]
    print(json.dumps({"before": before, "peak": sampler.peak, "after": private_bytes(), "seconds": seconds,
                      "weight_dtype": str(linear.weight.dtype), "compute_dtype": str(model.compute_dtype)}))


def measure(path: Path, dtype_name: str = "bf16") -> dict:
    """Loads `path` in a fresh process; RssAnon before, at peak and after, in bytes, and the file size."""
    command = [sys.executable, "-m", "bench.fp8_load_memory", "--child", str(path), dtype_name]
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"loading {path} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["file"] = path.stat().st_size
    return result


def main(argv=None) -> None:
    from .big_checkpoint import PRESETS, temporary_wan_checkpoint

    parser = argparse.ArgumentParser(prog="python -m bench.fp8_load_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="14B", choices=list(PRESETS))
    parser.add_argument("--layers", type=int, default=None, help="blocks to write (default: all of the preset)")
    parser.add_argument("--dtype", default="bf16", choices=DTYPES, help="weight dtype given to load_dit")
    parser.add_argument("--folder", default=None, help="where the temporary file goes (default: the system's)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    # A plain `kill` becomes SystemExit, so the temporary file is still deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("interrupted; temporary file removed"))
    start = time.perf_counter()
    with temporary_wan_checkpoint(args.preset, "comfy_fp8_scaled", folder=args.folder, num_layers=args.layers) as path:
        written = time.perf_counter() - start
        result = measure(path, args.dtype)
    gib = 2 ** 30
    ratio = result["peak"] / result["file"]
    layers = args.layers if args.layers is not None else PRESETS[args.preset].num_layers
    print(f"Wan {args.preset} x{layers} scaled-fp8 file: {result['file'] / gib:.2f} GiB (written in {written:.0f} s), "
          f"loaded with dtype {args.dtype} in {result['seconds']:.1f} s; weights {result['weight_dtype']}, "
          f"compute {result['compute_dtype']}")
    print(f"RssAnon: before load {result['before'] / gib:.3f} GiB, peak {result['peak'] / gib:.3f} GiB, "
          f"after {result['after'] / gib:.3f} GiB; growth during load {(result['peak'] - result['before']) / gib:.3f} GiB")
    print(f"summary: fp8_load_peak_private_over_file={ratio:.3f} (bound {BOUND}) "
          f"{'PASS' if ratio < BOUND else 'FAIL'}")
    if ratio >= BOUND:
        sys.exit(1)


if __name__ == "__main__":
    main()
