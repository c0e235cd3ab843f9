"""Latent x2 upscale + refine with the demo model: does it keep the base video and add detail?

    python -m bench.latent_upscale [--sigmas 0,0.1,0.2,0.3,0.5] [--methods latent,vae,model]

For each method and refine start sigma: base video (64x64) -> latent x2 -> KinemaSampler-style refine
from that sigma at 128x128 -> decode. Reported from the pixels:
- PSNR (dB) of the refined video shrunk back to 64x64 (antialiased) against the base video
  (acceptance: >= 25 dB): the refine must not change what the video shows;
- sharpness: variance of the Laplacian of the refined video's luma, against the same for a bicubic
  x2 of the decoded base video (acceptance: higher).
The `model` method needs a trained upsampler (python -m kinema.demo.train_upsampler).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

PROMPT = "a red circle bouncing on a blue background"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Videos in [-1, 1] -> PSNR in dB on the 0..1 scale."""
    mse = ((a - b) / 2).pow(2).mean().clamp_min(1e-12)
    return (10 * torch.log10(1 / mse)).item()


def laplacian_variance(video: torch.Tensor) -> float:
    """[1, 3, T, H, W] in [-1, 1] -> mean over frames of the variance of the luma's Laplacian (0..255 scale)."""
    luma = (0.299 * video[0, 0] + 0.587 * video[0, 1] + 0.114 * video[0, 2])[:, None] * 127.5  # [T, 1, H, W]
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return F.conv2d(luma, kernel).flatten(1).var(dim=1).mean().item()


def frames_resize(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    from kinema.core.upscale import resize_video

    return resize_video(video, size)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latent_upscale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigmas", default="0,0.1,0.2,0.3,0.5", help="refine start sigmas (0: no refine)")
    parser.add_argument("--methods", default="latent,vae,model")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upsampler", default=None, help="learned upsampler file (default: the demo model's)")
    parser.add_argument("--models-json", default=None, help="(tests) {dit, text, vae, size} of other files")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from kinema.core.dit import load_dit
    from kinema.core.sampling import SamplerSettings, sample
    from kinema.core.sampling.shapes import latent_shape
    from kinema.core.text import load_text_encoder
    from kinema.core.upscale import interpolate_latents, load_upsampler, vae_upscale
    from kinema.core.vae import load_vae

    if args.models_json:
        models = json.loads(args.models_json)
        upsampler_file = Path(args.upsampler) if args.upsampler else None
    else:
        from kinema.demo.dataset import SIZE
        from kinema.demo.files import DEMO_MODEL, DIT_FILE, TEXT_FILE, VAE_FILE

        models = {"dit": str(DIT_FILE), "text": str(TEXT_FILE), "vae": str(VAE_FILE), "size": SIZE}
        upsampler_file = Path(args.upsampler or DEMO_MODEL / "latent_upscale_models" /
                              "kinema_demo_latent_upscale_x2.safetensors")
    dit, vae = load_dit(models["dit"]), load_vae(models["vae"])
    positive, negative = load_text_encoder(models["text"]).encode([PROMPT, ""])
    size = models["size"]
    base_settings = SamplerSettings(steps=args.steps, cfg=4.0, shift=2.0, seed=args.seed)
    base = sample(dit, [positive], [negative], settings=base_settings,
                  shape=latent_shape(17, size, size, vae.config.z_dim))  # [1, C, 5, h, w]
    base_video = vae.decode(base, tiling=None)  # [1, 3, 17, size, size]
    bicubic = frames_resize(base_video, (2 * size, 2 * size))
    print(f"bicubic x2 of the base video: Laplacian variance {laplacian_variance(bicubic):.1f}, "
          f"PSNR after shrinking back {psnr(frames_resize(bicubic, (size, size)), base_video):.2f} dB")

    upscalers = {"latent": lambda z: interpolate_latents(z, 2.0),
                 "vae": lambda z: vae_upscale(vae, z, 2.0, tiling=None)}
    if upsampler_file is not None and upsampler_file.is_file():
        learned = load_upsampler(upsampler_file)
        upscalers["model"] = learned.upscale_video
    print(f"{'method':8} {'start sigma':>11} {'PSNR dB':>8} {'Lap. var':>9} {'sharper':>8}")
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        if method not in upscalers:
            print(f"{method:8} skipped (no trained upsampler at {upsampler_file})")
            continue
        big = upscalers[method](base)
        for sigma in [float(s) for s in args.sigmas.split(",")]:
            if sigma > 0:
                settings = SamplerSettings(steps=args.steps, cfg=4.0, shift=2.0, seed=args.seed + 1, start_sigma=sigma)
                refined = vae.decode(sample(dit, [positive], [negative], settings=settings, latents=big), tiling=None)
            else:  # sigma 0: the upscaled latents decoded as they are, no refine pass
                refined = vae.decode(big, tiling=None)
            quality = psnr(frames_resize(refined, (size, size)), base_video)
            sharp = laplacian_variance(refined)
            print(f"{method:8} {sigma:11.2f} {quality:8.2f} {sharp:9.1f} {str(sharp > laplacian_variance(bicubic)):>8}")


if __name__ == "__main__":
    main()
