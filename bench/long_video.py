"""Long video with the demo model on CPU: a 2-minute 30 fps run against a 10-second run of the same settings.

    python -m bench.long_video [--seconds 120] [--short-seconds 10] [--out bench/results/long_video]

Each length is generated in a fresh Python process (context-window sampling -> streaming decode ->
16 -> 30 fps conversion -> mp4) that reports its time and peak resident memory (getrusage). A
finished run leaves `<out>/run_<seconds>s.json` beside its mp4 and is not repeated, so the bench can
be run in parts (e.g. `--only 120`). Then seam and colour metrics are computed from the pixels of
the long video:
- seams: mean absolute frame-to-frame change on the frame pairs where a context window begins or
  ends, over the mean on all other pairs (acceptance: <= 1.5);
- colour: mean RGB of the last 10 s minus the first 10 s, per channel, in 0..255 units (stated
  bound: at most COLOUR_BOUND = 8 on every channel).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

PROMPT = "a red circle bouncing on a blue background"
GENERATION_FPS, OUTPUT_FPS = 16, 30
WINDOW, OVERLAP = 5, 2  # latent frames: the demo model is trained on 17-frame (5-latent) clips
DRIFT = 0.2
COLOUR_BOUND = 8.0  # stated bound on the mean colour shift, last 10 s vs first 10 s, per channel (0..255)


def _child(seconds: float, out_dir: Path, steps: int, models: dict) -> None:
    import torch

    from kinema.core.dit import load_dit
    from kinema.core.interp import frame_rate_converter
    from kinema.core.longvideo import LongVideoSettings, write_video
    from kinema.core.sampling import SamplerSettings, sample
    from kinema.core.sampling.shapes import latent_shape
    from kinema.core.text import load_text_encoder
    from kinema.core.vae import load_vae

    torch.set_num_threads(1)
    started = time.monotonic()
    dit, vae = load_dit(models["dit"]), load_vae(models["vae"])
    encoder = load_text_encoder(models["text"])
    positive, negative = encoder.encode([PROMPT, ""])
    del encoder
    size = models["size"]
    frames = int(round(seconds * GENERATION_FPS)) // 4 * 4 + 1
    shape = latent_shape(frames, size, size, vae.config.z_dim)
    settings = SamplerSettings(steps=steps, cfg=4.0, shift=2.0, solver="unipc", seed=0)
    long = LongVideoSettings(window=WINDOW, overlap=OVERLAP, drift_strength=DRIFT)
    latents = sample(dit, [positive], [negative], settings=settings, long_video=long, shape=shape)
    sampled = time.monotonic()
    path = out_dir / f"long_video_{seconds:g}s.mp4"
    if path.exists():
        path.unlink()  # a leftover of an interrupted earlier attempt (the json marks finished runs)
    write_video(vae, latents, path, fps=OUTPUT_FPS, tiling=None,
                frame_transform=frame_rate_converter(GENERATION_FPS, OUTPUT_FPS, "dis_flow"))
    result = {"seconds": seconds, "video_frames_16fps": frames, "latent_frames": shape[2], "path": str(path),
              "sample_s": sampled - started, "decode_write_s": time.monotonic() - sampled,
              "total_s": time.monotonic() - started,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    tmp = out_dir / f".run_{seconds:g}s.json.partial"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, out_dir / f"run_{seconds:g}s.json")


def run_length(seconds: float, out_dir: Path, steps: int, models: dict) -> dict:
    """The run's result, generating it in a fresh process unless a finished one is on disk."""
    done = out_dir / f"run_{seconds:g}s.json"
    if not done.exists():
        cmd = [sys.executable, "-m", "bench.long_video", "--child", str(seconds), "--out", str(out_dir),
               "--steps", str(steps), "--models-json", json.dumps(models)]
        subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parents[1])
    return json.loads(done.read_text())


def boundary_pairs(latent_frames: int, total_out: int) -> set[int]:
    """Output frame indices i whose pair (i, i+1) spans the start or end of a context window."""
    from kinema.core.longvideo import plan_windows

    windows = plan_windows(latent_frames, WINDOW, OVERLAP)
    edges = {w.start for w in windows[1:]} | {w.end - 1 for w in windows[:-1]}
    pairs = set()
    for latent in edges:
        first_video_frame = max(0, 4 * latent - 3)  # latent frame l >= 1 covers video frames 4l-3 .. 4l
        i = int(first_video_frame * OUTPUT_FPS / GENERATION_FPS)
        for j in (i - 1, i):  # the change into the window's first output frame
            if 0 <= j < total_out - 1:
                pairs.add(j)
    return pairs


def seam_and_colour(result: dict) -> dict:
    from kinema.core.video import read_video

    frames = read_video(result["path"]).frames.float()  # [N, H, W, 3] uint8 -> float
    change = (frames[1:] - frames[:-1]).abs().mean((1, 2, 3))  # [N-1] per pair
    seams = sorted(boundary_pairs(result["latent_frames"], frames.shape[0]))
    inside = [i for i in range(change.shape[0]) if i not in set(seams)]
    ten = 10 * OUTPUT_FPS
    first, last = frames[:ten].mean((0, 1, 2)), frames[-ten:].mean((0, 1, 2))  # [3]
    return {"frames": frames.shape[0], "seam_change": change[seams].mean().item(),
            "inside_change": change[inside].mean().item(),
            "seam_ratio": (change[seams].mean() / change[inside].mean()).item(),
            "colour_first_10s": [round(v, 2) for v in first.tolist()],
            "colour_last_10s": [round(v, 2) for v in last.tolist()],
            "colour_shift_max": (last - first).abs().max().item()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.long_video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--short-seconds", type=float, default=10.0)
    parser.add_argument("--only", type=float, default=None, help="generate only this length (run in parts)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="bench/results/long_video")
    parser.add_argument("--models-json", default=None, help="(internal / tests) {dit, text, vae, size} of other files")
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.models_json:
        models = json.loads(args.models_json)
    else:
        from kinema.demo.dataset import SIZE
        from kinema.demo.files import DIT_FILE, TEXT_FILE, VAE_FILE

        missing = [str(f) for f in (DIT_FILE, TEXT_FILE, VAE_FILE) if not f.is_file()]
        if missing:
            raise SystemExit(f"the demo model is not there yet: missing {', '.join(missing)}.")
        models = {"dit": str(DIT_FILE), "text": str(TEXT_FILE), "vae": str(VAE_FILE), "size": SIZE}
    if args.child is not None:
        _child(args.child, out_dir, args.steps, models)
        return
    lengths = [args.only] if args.only is not None else [args.short_seconds, args.seconds]
    results = {s: run_length(s, out_dir, args.steps, models) for s in lengths}
    for s, r in results.items():
        print(f"{s:g} s: {r['latent_frames']} latent frames, sampling {r['sample_s']:.1f} s, decode+30fps+mp4 "
              f"{r['decode_write_s']:.1f} s, total {r['total_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB")
    if args.only is None:
        long, short = results[args.seconds], results[args.short_seconds]
        ratio = long["peak_rss_mb"] / short["peak_rss_mb"]
        print(f"peak RSS {args.seconds:g} s / {args.short_seconds:g} s = {ratio:.3f} (acceptance: <= 1.15)")
        metrics = seam_and_colour(long)
        print(f"seams: change at window boundaries {metrics['seam_change']:.3f} vs inside {metrics['inside_change']:.3f}"
              f" -> ratio {metrics['seam_ratio']:.3f} (acceptance: <= 1.5)")
        print(f"colour: first 10 s {metrics['colour_first_10s']}, last 10 s {metrics['colour_last_10s']}, "
              f"max channel shift {metrics['colour_shift_max']:.2f} / 255 (stated bound: <= {COLOUR_BOUND:g})")
        (out_dir / "summary.json").write_text(json.dumps({"runs": {str(k): v for k, v in results.items()},
                                                          "rss_ratio": ratio, **metrics}, indent=1))


if __name__ == "__main__":
    main()
