"""Private memory of loading and block-streaming a full-size Wan DiT on the CPU (issue 14).

`python -m bench.memory [--preset 14B] [--layers N] [--kept 4,20] [--folder DIR]`

Writes a random-weight DiT with the exact architecture of `--preset` in ComfyUI's fp8-scaled layout
(bench/big_checkpoint.py; ~14 GB for 14B) into a temporary folder, deleted afterwards even on
failure, then runs each case in a fresh Python process:
- resident: `load_dit` + one forward on a 1x16x1x2x2 latent (one token) with every weight where
  the loader put it (memory-mapped from the file);
- streamed N: the same with `BlockStreaming(blocks_on_device=N, storage="mmap")` on the CPU: the N
  kept blocks and the streamed block in flight are private copies, the rest stays in the file.
"Private memory" is RssAnon from /proc/self/status (anonymous pages: not the page cache of the
memory-mapped file), sampled every millisecond by a thread; the peak is reported.

Criteria: resident peak <= 10% of the file; streamed peak <= N blocks' bytes (as stored) x 1.2 +
1 GiB; streamed output == resident output. The model computes in bfloat16 (as on GPUs): the
prepared prompt's keys and values, 40 x 2 x [512, 5120] per prompt, are activations of every run
and take 0.42 GB in bfloat16, twice that in float32. Last line:
`summary: load_private_ratio=<peak / file size> stream_budget_ratio=<worst peak / budget>`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .private_memory import PeakPrivate, private_bytes

GIB = 1 << 30
BUDGET_FACTOR = 1.2
LATENT = (1, 16, 1, 2, 2)  # [B, C, T, H, W]: one token after the 1x2x2 patch
PROMPT_TOKENS = 16
COMPUTE_DTYPES = ("bfloat16", "float16", "float32")


@dataclass(frozen=True)
class Case:
    name: str
    kept: Optional[int]  # None: resident
    peak_bytes: int
    baseline_bytes: int  # private memory after the imports, before loading
    load_s: float
    forward_s: float
    kept_block_bytes: int  # N blocks' bytes as stored (0 for the resident case)
    workspace_bytes: int  # of the peak: core/layers.py's reused conversion buffers, held for the process's life
    equal: bool  # output identical to the resident run's
    relative_difference: float  # max |out - resident| / max |resident|

    @property
    def budget_bytes(self) -> Optional[int]:
        return None if self.kept is None else int(self.kept_block_bytes * BUDGET_FACTOR) + GIB


@dataclass(frozen=True)
class Result:
    preset: str
    layers: int
    file_bytes: int
    write_s: float
    cases: list[Case]

    @property
    def load_private_ratio(self) -> float:
        return self.cases[0].peak_bytes / self.file_bytes

    @property
    def stream_budget_ratio(self) -> Optional[float]:
        streamed = [c.peak_bytes / c.budget_bytes for c in self.cases if c.kept is not None]
        return max(streamed) if streamed else None


# --- measuring, in the child process -------------------------------------------------------------

def _child(spec: dict) -> None:
    import torch

    from kinema.core.dit import load_dit
    from kinema.core.dit.streaming import BlockStreaming, load_streamed_dit

    torch.set_num_threads(spec["threads"])
    compute_dtype = getattr(torch, spec["compute_dtype"])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(LATENT, generator=g)
    context = [torch.randn(PROMPT_TOKENS, 4096, generator=g)]
    t = torch.tensor([500.0])
    baseline = private_bytes()
    with PeakPrivate() as peak:
        start = time.perf_counter()
        if spec["kept"] is None:
            dit = load_dit(spec["path"], compute_dtype=compute_dtype)
        else:
            streaming = BlockStreaming(blocks_on_device=spec["kept"], prefetch=1, storage="mmap")
            dit = load_streamed_dit(spec["path"], streaming, device="cpu", compute_dtype=compute_dtype)
        loaded = time.perf_counter()
        with torch.inference_mode():
            out = dit(x, t, context)  # [1, 16, 1, 2, 2]
        done = time.perf_counter()
    kept = spec["kept"] or 0
    block_bytes = sum(t.numel() * t.element_size() for block in dit.blocks[:kept] for t in block.state_dict().values())
    torch.save(out, spec["out"])
    print(json.dumps({"peak": peak.peak, "baseline": baseline, "load_s": loaded - start, "forward_s": done - loaded,
                      "kept_block_bytes": block_bytes, "workspace": _workspace_bytes()}))


def _workspace_bytes() -> int:
    """Bytes of the CPU buffers core/layers.py reuses for weight conversions (a diagnostic: they stay
    allocated for the process's lifetime, so they are part of every peak; 0 if the module has none)."""
    from kinema.core import layers

    buffers = getattr(getattr(layers, "_WORKSPACE", None), "buffers", {})
    return sum(b.numel() * b.element_size() for b in buffers.values())


# --- driving, in the parent ----------------------------------------------------------------------

def _run_child(spec: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.memory", "--child", json.dumps(spec)], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(f"case {spec['kept']} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def file_bytes_of(preset: str, layers: Optional[int]) -> int:
    """Size of the fp8-scaled file: Linear weights one byte per value, everything else bf16."""
    import dataclasses

    import torch

    from kinema.core.dit.model import WanDiT
    from kinema.core.layers import Linear

    from .big_checkpoint import PRESETS

    config = PRESETS[preset] if layers is None else dataclasses.replace(PRESETS[preset], num_layers=layers)
    with torch.device("meta"):
        model = WanDiT(config)
    linear = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, Linear)}
    return sum(t.numel() * (1 if k in linear else 2) for k, t in model.state_dict().items())


def measure(preset: str = "14B", layers: Optional[int] = None, kept=(4, 20), folder: Optional[str] = None,
            threads: int = 2, compute_dtype: str = "bfloat16") -> Result:
    """Write the file, run the resident case and one streamed case per entry of `kept`, delete the file."""
    from .big_checkpoint import temporary_wan_checkpoint

    folder = folder or tempfile.gettempdir()
    needed, free = file_bytes_of(preset, layers) + GIB, shutil.disk_usage(folder).free
    print(f"{folder}: {free / 1e9:.1f} GB free, the {preset} file needs ~{needed / 1e9:.1f} GB", flush=True)
    if free < needed:
        raise SystemExit(f"not enough disk space in {folder}: pass --folder with {needed / 1e9:.1f} GB free")
    start = time.perf_counter()
    with temporary_wan_checkpoint(preset, "comfy_fp8_scaled", folder=folder, num_layers=layers) as path:
        write_s = time.perf_counter() - start
        size = path.stat().st_size
        print(f"wrote {path.name}: {size / 1e9:.2f} GB in {write_s:.0f} s", flush=True)
        cases, reference = [], None
        for n in (None, *kept):
            spec = {"path": str(path), "kept": n, "out": str(path.parent / f"out_{n}.pt"), "threads": threads,
                    "compute_dtype": compute_dtype}
            numbers = _run_child(spec)
            out = _load_tensor(spec["out"])  # [1, 16, 1, 2, 2]
            reference = out if reference is None else reference
            difference = ((out - reference).abs().max() / reference.abs().max()).item()
            case = Case("resident" if n is None else f"streamed, {n} kept", n, numbers["peak"], numbers["baseline"],
                        numbers["load_s"], numbers["forward_s"], numbers["kept_block_bytes"],
                        numbers["workspace"], bool(out.equal(reference)), difference)
            print(_line(case, size), flush=True)
            cases.append(case)
        layer_count = layers if layers is not None else _preset_layers(preset)
    return Result(preset, layer_count, size, write_s, cases)


def _load_tensor(path: str):
    import torch

    return torch.load(path)


def _preset_layers(preset: str) -> int:
    from .big_checkpoint import PRESETS

    return PRESETS[preset].num_layers


def _line(case: Case, file_bytes: int) -> str:
    limit = (f"budget {case.budget_bytes / GIB:.2f} GiB -> {case.peak_bytes / case.budget_bytes:.3f}"
             if case.kept is not None else f"file {file_bytes / GIB:.2f} GiB -> {case.peak_bytes / file_bytes:.3f}")
    return (f"{case.name:<20} peak private {case.peak_bytes / GIB:6.2f} GiB (at start {case.baseline_bytes / GIB:.2f}, "
            f"conversion buffers {case.workspace_bytes / GIB:.2f}), "
            f"{limit}; load {case.load_s:.0f} s, forward {case.forward_s:.0f} s, output equal: {case.equal} "
            f"(max relative difference {case.relative_difference:.1e})")


def summary(result: Result) -> dict[str, Optional[float]]:
    return {"load_private_ratio": result.load_private_ratio, "stream_budget_ratio": result.stream_budget_ratio}


def run(quick: bool, device, dtype, rounds: int):
    """`python -m bench --only memory`. CPU: the private-memory cases above (quick: 1.3B widths, 6 layers).
    CUDA: peak VRAM and seconds per step at 832x480, 81 frames, resident / half / all streamed."""
    if device.type == "cuda":
        return [], gpu_steps("1.3B" if quick else "14B", device, rounds)
    result = measure("1.3B", 6, kept=(2,)) if quick else measure()
    return [], summary(result)


def gpu_steps(preset: str, device, rounds: int) -> dict[str, float]:
    """Every block kept, half of them, none: one guided step (two forwards) on a [1, 16, 21, 60, 104]
    latent with prepared prompts, weights streamed from pinned memory; prints peak VRAM and s/step."""
    import gc

    import torch

    from kinema.core.dit.streaming import BlockStreaming, load_streamed_dit

    from .big_checkpoint import PRESETS, temporary_wan_checkpoint

    blocks = PRESETS[preset].num_layers
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 21, 60, 104, generator=g).to(device)
    prompts = [[torch.randn(PROMPT_TOKENS, 4096, generator=g).to(device)] for _ in range(2)]
    t = torch.tensor([900.0], device=device)
    seconds = {}
    print(f"{'Wan ' + preset + ' ' + torch.cuda.get_device_name(device):<40} {'peak VRAM (GiB)':>16} {'s/step':>8}")
    with temporary_wan_checkpoint(preset, "comfy_fp8_scaled") as path:
        for kept in (blocks, blocks // 2, 0):
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            dit = load_streamed_dit(path, BlockStreaming(blocks_on_device=kept, storage="pinned"), device=device)
            with torch.inference_mode():
                contexts = [dit.prepare_context(p) for p in prompts]
                times = []
                for _ in range(rounds + 1):  # the first round warms up
                    torch.cuda.synchronize(device)
                    start = time.perf_counter()
                    for context in contexts:  # one guided step: positive and negative
                        dit(x, t, context)
                    torch.cuda.synchronize(device)
                    times.append(time.perf_counter() - start)
            seconds[kept] = sorted(times[1:])[len(times[1:]) // 2]
            peak = torch.cuda.max_memory_allocated(device) / GIB
            print(f"{f'{kept} of {blocks} blocks kept':<40} {peak:>16.2f} {seconds[kept]:>8.2f}", flush=True)
            del dit, contexts
    return {"half_streamed_step_ratio": seconds[blocks // 2] / seconds[blocks],
            "all_streamed_step_ratio": seconds[0] / seconds[blocks]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="14B", choices=("14B", "1.3B"))
    parser.add_argument("--layers", type=int, default=None, help="fewer blocks than the preset (a reduced file)")
    parser.add_argument("--kept", default="4,20", help="blocks kept on the device in the streamed cases")
    parser.add_argument("--folder", default=None, help="where the temporary file goes (default: the temp folder)")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--compute-dtype", default="bfloat16", choices=COMPUTE_DTYPES)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(json.loads(args.child))
        return
    kept = tuple(int(n) for n in args.kept.split(",") if n.strip())
    result = measure(args.preset, args.layers, kept, args.folder, args.threads, args.compute_dtype)
    print(f"Wan {result.preset} architecture ({result.layers} blocks), fp8-scaled file {result.file_bytes / 1e9:.2f} "
          f"GB written in {result.write_s:.0f} s; compute {args.compute_dtype} on {args.threads} CPU threads")
    figures = summary(result)
    print("summary: " + " ".join(f"{k}={'n/a' if v is None else f'{v:.3f}'}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
