"""Peak resident memory of the VAE decode: streaming to an mp4 vs building a ComfyUI IMAGE batch.

`python -m bench.vae_memory [--size 256] [--version 2.1] [--frames 9,33,129,513]`

Each case runs in a fresh Python process (peak RSS from getrusage), so cases never share
allocations. A tiny random VAE stands in for the real one: the point is how the peak grows with
the clip length, which for the streaming path must stay flat (fixed by the frame size).

glibc's malloc raises its mmap threshold as big blocks are freed, after which mid-sized
temporaries come from a fragmenting heap: the default-allocator peak creeps up over the first
~20 chunks and then stays flat. The "fixed mmap" column runs the same streaming decode with
MALLOC_MMAP_THRESHOLD_=65536, which shows the live working set alone.
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
    if mode == "stream":
        vae.decode_to_file(z, Path(out_dir) / f"bench_{frames}_{os.getpid()}.mp4", fps=16, tiling=None)
    else:
        images = vae.decode_to_images(z, tiling=None)
        assert images.shape[0] == frames
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"peak_mb": peak_mb}))


def _measure(mode: str, frames: int, vae_path: Path, size: int, out_dir: str, fixed_mmap: bool = False) -> float:
    cmd = [sys.executable, "-m", "bench.vae_memory", "--child", mode, str(frames), str(vae_path), str(size), out_dir]
    env = dict(os.environ, **({"MALLOC_MMAP_THRESHOLD_": "65536"} if fixed_mmap else {}))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def run(size: int = 128, version: str = "2.1", frame_counts=(9, 33, 129, 513)) -> list[tuple]:
    from kinema.tests.tiny_vae import save_tiny_vae

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        vae_path = save_tiny_vae(tmp, version, "comfy")
        for frames in frame_counts:
            stream = _measure("stream", frames, vae_path, size, tmp)
            fixed = _measure("stream", frames, vae_path, size, tmp, fixed_mmap=True)
            batch = _measure("images", frames, vae_path, size, tmp)
            image_mb = frames * size * size * 3 * 4 / 2**20
            rows.append((frames, stream, fixed, batch, image_mb))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.vae_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="square frame size in pixels")
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
    print(f"{'frames':>7} {'stream->mp4':>12} {'(fixed mmap)':>13} {'IMAGE batch':>12} {'IMAGE tensor':>13}")
    for frames, stream, fixed, batch, image_mb in rows:
        print(f"{frames:>7} {stream:>12.0f} {fixed:>13.0f} {batch:>12.0f} {image_mb:>13.0f}")
    first, last = rows[0], rows[-1]
    print(f"summary: from {first[0]} to {last[0]} frames the streaming peak grows {last[1] / first[1] - 1:+.1%} "
          f"({last[2] / first[2] - 1:+.1%} with a fixed mmap threshold); the IMAGE batch grows "
          f"{last[3] / first[3] - 1:+.1%}")


if __name__ == "__main__":
    main()
