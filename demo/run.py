"""`python -m kinema demo "a red circle moving to the right on a blue background"`: prompt in, mp4 out.

Loads the tiny demo model shipped in demo_model/ with the same loaders and sampler as the real
Wan models (nothing is downloaded), generates 64x64 frames and writes an H.264 mp4. A few
seconds on a laptop CPU.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .dataset import FPS, FRAMES, SIZE, canonical_caption
from .files import DIT_FILE, TEXT_FILE, VAE_FILE

# torch and the models are imported when a video is made, not when `python -m kinema` builds
# its command list.

DEFAULT_PROMPT = canonical_caption("red", "circle", "right", "blue")
# The demo was trained with the empty caption as its unconditional branch.
NEGATIVE_PROMPT = ""
DEFAULT_STEPS, DEFAULT_CFG, DEFAULT_SHIFT, SOLVER = 20, 4.0, 2.0, "unipc"


def sampler_settings(seed: int = 0, steps: int = DEFAULT_STEPS, cfg: float = DEFAULT_CFG, shift: float = DEFAULT_SHIFT):
    from ..core.sampling import SamplerSettings

    return SamplerSettings(steps=steps, cfg=cfg, shift=shift, solver=SOLVER, seed=seed)


def missing_files() -> list[str]:
    return [str(f) for f in (DIT_FILE, TEXT_FILE, VAE_FILE) if not f.is_file()]


@dataclass
class DemoModel:
    dit: object
    text_encoder: object
    vae: object

    @classmethod
    def load(cls) -> "DemoModel":
        """The shipped files, through the public loaders the real Wan models use."""
        from ..core.dit import load_dit
        from ..core.text import load_text_encoder
        from ..core.vae import load_vae

        if missing_files():
            raise FileNotFoundError(f"demo model files missing: {', '.join(missing_files())}. They ship with the "
                                    f"repository (demo_model/); restore them with `git checkout -- demo_model`")
        return cls(load_dit(DIT_FILE), load_text_encoder(TEXT_FILE), load_vae(VAE_FILE))

    def latents(self, prompt: str, settings, frames: int = FRAMES):
        """[1, 16, T', 8, 8] latents for `prompt` (settings: a SamplerSettings)."""
        from ..core.sampling import generate

        return generate(self.dit, self.text_encoder, prompt, NEGATIVE_PROMPT, width=SIZE, height=SIZE,
                        frames=frames, settings=settings)

    def video(self, prompt: str, settings, frames: int = FRAMES):
        """uint8 numpy `[T, H, W, 3]` (for scoring; the command streams to a file instead)."""
        import torch

        pixels = self.vae.decode(self.latents(prompt, settings, frames))[0]  # [3, T, H, W] in [-1, 1]
        return ((pixels.permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def unused_output_path(folder: Path, stem: str = "kinema_demo") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    n = 1
    while (folder / f"{stem}_{n:05d}.mp4").exists():
        n += 1
    return folder / f"{stem}_{n:05d}.mp4"


def _frames(value: str) -> int:
    frames = int(value)
    if frames < 1 or (frames - 1) % 4:
        raise argparse.ArgumentTypeError(f"{frames} frames: the Wan VAE needs 1 + 4k frames (e.g. 13, 17, 21)")
    return frames


def add_parser(subparsers) -> None:
    """Registers `demo` with the `python -m kinema` command line."""
    parser = subparsers.add_parser(
        "demo", help="make a video with the tiny built-in demo model (CPU, nothing to download)",
        description="Make a short 64x64 video from a prompt with the tiny demo model shipped in demo_model/. "
                    "It knows flat shapes (circle, square, triangle, star, diamond) in 8 colours on a coloured "
                    "background, moving left/right/up/down, bouncing, growing, shrinking or rotating.")
    parser.add_argument("prompt", nargs="?", default=DEFAULT_PROMPT, help=f"what to show (default: {DEFAULT_PROMPT!r})")
    parser.add_argument("--out", type=Path, help="mp4 to write (default: a new name in ./output/); never overwritten")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=_frames, default=FRAMES, help=f"1 + 4k frames (default {FRAMES})")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"sampling steps (default {DEFAULT_STEPS})")
    parser.add_argument("--cfg", type=float, default=DEFAULT_CFG, help=f"guidance scale (default {DEFAULT_CFG})")
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    out: Optional[Path] = args.out
    if out is not None and out.exists():
        raise FileExistsError(f"{out} already exists; choose another --out (the demo never overwrites files)")
    out = out or unused_output_path(Path("output"))
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    import logging

    import torch

    if not getattr(args, "verbose", False):  # the demo DiT is knowingly no released size: no notice about it
        logging.getLogger("kinema.core.dit.config").setLevel(logging.WARNING)

    # The model is so small that a second thread gains little, and on shared cores OpenMP threads
    # waiting for each other made sampling 25x slower (measured), so run single-threaded.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = DemoModel.load()
        settings = sampler_settings(args.seed, args.steps, args.cfg)
        latents = model.latents(args.prompt, settings, args.frames)
        path = model.vae.decode_to_file(latents, out, fps=FPS)
    finally:
        torch.set_num_threads(threads)
    print(f"{path}  ({args.frames} frames {SIZE}x{SIZE}, {time.time() - started:.1f} s): {args.prompt}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kinema.demo.run")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["demo", *(argv or [])])
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
