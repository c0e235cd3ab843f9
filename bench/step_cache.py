"""Step cache: DiT evaluations, wall time and fidelity (PSNR against the uncached output of the
same seed) for a sweep of thresholds.

Runs on the shipped demo model at its own operating point (64x64, 17 frames, its default prompt,
UniPC, cfg 4, shift 2; PSNR on the decoded video in [-1, 1]); with --dit, on that DiT (and --vae /
--text-encoder when given); without either, on a tiny random DiT, labelled as such, whose PSNR is
measured on the latents (range = the uncached latents' range) and says little about real videos.

    python -m bench.step_cache [--steps 30] [--thresholds 0.05,0.1,0.15,0.2,0.3] [--dit PATH ...]
"""
from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from kinema.core.cache import StepCacheSettings, with_step_cache
from kinema.core.dit import load_dit
from kinema.core.sampling import SamplerSettings, make_schedule, sample

from .timing import Row

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.3)
DOCUMENTED_THRESHOLD = 0.15  # the setting the acceptance figures are quoted at


@dataclass
class Setup:
    label: str
    dit: object
    positive: list
    negative: list
    shape: tuple
    vae: Optional[object] = None
    cfg: float = 5.0
    shift: float = 5.0
    solver: str = "unipc"


def demo_setup(dit_path: Optional[Path], vae_path: Optional[Path], text_path: Optional[Path],
               device: torch.device) -> Optional[Setup]:
    """The shipped demo model (or the given files) at the demo's own size, prompt and sampler settings."""
    from kinema.demo import run as demo
    from kinema.demo.dataset import FRAMES, SIZE
    from kinema.demo.files import DIT_FILE, TEXT_FILE, VAE_FILE

    if dit_path is None and demo.missing_files():
        return None
    dit_path, vae_path = dit_path or DIT_FILE, vae_path or (VAE_FILE if dit_path is None else None)
    text_path = text_path or (TEXT_FILE if dit_path == DIT_FILE else None)
    dit = load_dit(dit_path, device=device)
    vae = None
    if vae_path is not None:
        from kinema.core.vae import load_vae
        vae = load_vae(vae_path, device=device)
    if text_path is not None:
        from kinema.core.text import load_text_encoder
        encoder = load_text_encoder(text_path, device=device)
        positive, negative = encoder.encode([demo.DEFAULT_PROMPT]), encoder.encode([demo.NEGATIVE_PROMPT])
    else:
        positive, negative = _random_context(dit.config.text_dim)
    z = vae.config.z_dim if vae is not None else dit.config.out_dim
    stride = vae.config.spatial_stride if vae is not None else 8
    shape = (1, z, (FRAMES - 1) // 4 + 1, SIZE // stride, SIZE // stride)  # the demo's 17 frames of 64 x 64
    return Setup(f"demo model ({dit_path.name})", dit, positive, negative, shape, vae, cfg=demo.DEFAULT_CFG,
                 shift=demo.DEFAULT_SHIFT, solver=demo.SOLVER)


def tiny_setup(device: torch.device) -> Setup:
    from diffusers import WanTransformer3DModel  # bench-only dependency, builds the random DiT

    torch.manual_seed(0)
    model = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=64, in_channels=16,
                                  out_channels=16, text_dim=64, freq_dim=256, ffn_dim=256, num_layers=2)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        dit = load_dit(folder, device=device)
    positive, negative = _random_context(64)
    return Setup("TINY RANDOM DiT (no demo model found)", dit, positive, negative, (1, 16, 3, 16, 16))


def _random_context(text_dim: int) -> tuple[list, list]:
    g = torch.Generator().manual_seed(0)
    return [torch.randn(16, text_dim, generator=g)], [torch.randn(8, text_dim, generator=g)]


def psnr(output: torch.Tensor, reference: torch.Tensor, peak_to_peak: float) -> float:
    mse = float(((output.float() - reference.float()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(peak_to_peak ** 2 / mse)


def sweep(setup: Setup, steps: int, thresholds, device: torch.device, rounds: int = 1) -> list[dict]:
    sampler = SamplerSettings(steps=steps, cfg=setup.cfg, shift=setup.shift, solver=setup.solver, seed=42)

    def timed(model):
        """Latents and the median wall time of `rounds` identical runs (the cache resets per run)."""
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            latents = sample(model, setup.positive, setup.negative, settings=sampler, shape=setup.shape,
                             device=device)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        return latents, statistics.median(times)

    reference, reference_s = timed(setup.dit)
    calls = 2 * steps  # conditional + unconditional pass per step
    if setup.vae is not None:
        reference_video, peak, measured_on = setup.vae.decode(reference), 2.0, "decoded video"
    else:
        peak, measured_on = float(reference.max() - reference.min()), "latents"
    results = [dict(threshold=0.0, evaluations=calls, seconds=reference_s, psnr=math.inf, measured_on=measured_on,
                    reference_s=reference_s, calls=calls)]
    for threshold in thresholds:
        model, _, cache = with_step_cache(StepCacheSettings(threshold=threshold), steps, setup.dit,
                                          sigmas=make_schedule(sampler).sigmas.tolist())
        latents, seconds = timed(model)
        evaluations = cache.stats.evaluations // rounds  # the stats add up over the identical runs
        compared = setup.vae.decode(latents) if setup.vae is not None else latents
        target = reference_video if setup.vae is not None else reference
        results.append(dict(threshold=threshold, evaluations=evaluations, seconds=seconds,
                            psnr=psnr(compared, target, peak), measured_on=measured_on, reference_s=reference_s,
                            calls=calls))
    return results


def run(quick: bool, device: torch.device, dtype: torch.dtype, rounds: int,
        setup: Optional[Setup] = None, steps: Optional[int] = None, thresholds=THRESHOLDS
        ) -> tuple[list[Row], dict[str, float]]:
    """Bench section (python -m bench): cached time vs uncached time per threshold."""
    setup = setup or demo_setup(None, None, None, device) or tiny_setup(device)
    steps = steps or (20 if quick else 30)
    print(f"step cache on {setup.label}: {setup.solver}, {steps} steps, cfg {setup.cfg:g}, shift {setup.shift:g}, "
          f"{2 * steps} DiT calls uncached")
    rows, summary = [], {}
    for r in sweep(setup, steps, thresholds, device, rounds)[1:]:
        fewer = r["calls"] / r["evaluations"]
        rows.append(Row("cache", f"threshold {r['threshold']:g}", r["seconds"], r["reference_s"],
                        f"{r['evaluations']}/{r['calls']} DiT evaluations ({fewer:.2f}x fewer), "
                        f"PSNR {r['psnr']:.1f} dB on {r['measured_on']}"))
        if r["threshold"] == DOCUMENTED_THRESHOLD:
            summary = {"cache_fewer_evals": fewer, "cache_psnr_db": r["psnr"]}
    return rows, summary


def main(argv=None) -> None:
    from .timing import print_table

    parser = argparse.ArgumentParser(prog="python -m bench.step_cache", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--thresholds", default=",".join(map(str, THRESHOLDS)))
    parser.add_argument("--dit", type=Path, help="DiT file or folder (default: found in demo_model/)")
    parser.add_argument("--vae", type=Path, help="VAE for PSNR on decoded video (default: found in demo_model/)")
    parser.add_argument("--text-encoder", type=Path, help="text encoder (default: found in demo_model/)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="runs per threshold (median time)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    setup = demo_setup(args.dit, args.vae, args.text_encoder, device) or tiny_setup(device)
    thresholds = tuple(float(t) for t in args.thresholds.split(","))
    rows, summary = run(False, device, torch.float32, args.rounds, setup=setup, steps=args.steps,
                        thresholds=thresholds)
    print_table(rows)
    print("summary: " + " ".join(f"{k}={v:.2f}" for k, v in summary.items()))


if __name__ == "__main__":
    main()
