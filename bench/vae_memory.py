"""Peak resident memory of the VAE decode: streaming to an mp4 vs building a ComfyUI IMAGE batch.

`python -m bench.vae_memory [--size 192] [--version 2.1] [--frames 9,33,129,513]`

Each case runs in a fresh Python process (peak RSS from getrusage), so cases never share
allocations. A tiny random VAE stands in for the real one: the point is how the peak grows with
the clip length, which for the streaming path must stay flat (fixed by the frame size).

The "glibc dynamic" column runs the same streaming decode with core.vae.heap's fixed mmap
threshold switched off, i.e. with glibc's default rule that raises the threshold as big blocks are
freed: chunk-sized temporaries then come from a fragmenting heap and the peak varies from run to
run and creeps up with the clip. The summary line gives each column's growth from the shortest to
the longest clip (the acceptance bound for the streaming decode is 10% at 192x192).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path


def _child(mode: str, frames: int, vae_path: str, size: int, out_dir: str) -> None:
    import torch

    from kinema.core.vae import load_vae

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    vae = load_vae(vae_path)
    s = vae.config.spatial_stride
    latent_frames = vae.config.latent_frames(frames)
    z = torch.randn(1, vae.config.z_dim, latent_frames, size // s, size // s, generator=torch.Generator().manual_seed(0))
    if mode == "stream-dynamic":  # the decode as it ran before core.vae.heap, for comparison
        import contextlib

        from kinema.core.vae import model

        model.steady_heap = contextlib.nullcontext
    if mode.startswith("stream"):
        vae.decode_to_file(z, Path(out_dir) / f"bench_{frames}_{os.getpid()}.mp4", fps=16, tiling=None)
    else:
        images = vae.decode_to_images(z, tiling=None)
        assert images.shape[0] == frames
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"peak_mb": peak_mb}))


def _measure(mode: str, frames: int, vae_path: Path, size: int, out_dir: str) -> float:
    cmd = [sys.executable, "-m", "bench.vae_memory", "--child", mode, str(frames), str(vae_path), str(size), out_dir]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def run(size: int = 192, version: str = "2.1", frame_counts=(9, 33, 129, 513)) -> list[tuple]:
    from kinema.tests.tiny_vae import save_tiny_vae

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vae_path = save_tiny_vae(tmp, version, "comfy")
        for frames in frame_counts:
            stream = _measure("stream", frames, vae_path, size, tmp)
            dynamic = _measure("stream-dynamic", frames, vae_path, size, tmp)
            batch = _measure("images", frames, vae_path, size, tmp)
            image_mb = frames * size * size * 3 * 4 / 2**20
            rows.append((frames, stream, dynamic, batch, image_mb))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.vae_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192, help="square frame size in pixels")
    parser.add_argument("--version", default="2.1", choices=("2.1", "2.2"))
    parser.add_argument("--frames", default="9,33,129,513")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, frames, vae_path, size, out_dir = args.child
        _child(mode, int(frames), vae_path, int(size), out_dir)
        return
    counts = tuple(int(f) for f in args.frames.split(","))
    rows = run(args.size, args.version, counts)
    print(f"Wan{args.version} tiny VAE, {args.size}x{args.size}, peak RSS per fresh process (MiB)")
    print(f"{'frames':>7} {'stream->mp4':>12} {'(glibc dynamic)':>16} {'IMAGE batch':>12} {'IMAGE tensor':>13}")
    for frames, stream, dynamic, batch, image_mb in rows:
        print(f"{frames:>7} {stream:>12.0f} {dynamic:>16.0f} {batch:>12.0f} {image_mb:>13.0f}")
    first, last = rows[0], rows[-1]
    growth = {name: last[i] / first[i] - 1 for i, name in
              ((1, "stream_growth"), (2, "glibc_dynamic_growth"), (3, "image_batch_growth"))}
    print(f"peak growth from {first[0]} to {last[0]} frames (the streaming decode's bound is 10% at 192x192):")
    print("summary: " + " ".join(f"{k}={v:+.3f}" for k, v in growth.items()))


if __name__ == "__main__":
    main()
