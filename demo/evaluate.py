"""Score the demo model on caption combinations it never saw in training, from the output pixels.

    python -m kinema.demo.evaluate [--seeds 3] [--steps 20]

For every held-out (object colour, background colour, direction) combination, generate one
video per seed (shape and caption wording vary with the seed) and read back from the pixels
the background colour, the object colour and the direction the object's centroid moves
(`scoring.read_video`). Prints a markdown table (the README's) and per-sample lines.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..core.vae import load_vae
from . import dataset
from .files import VAE_FILE
from .run import DEFAULT_CFG, DEFAULT_SHIFT, DEFAULT_STEPS, DemoModel, sampler_settings
from .scoring import read_video

# Wordings used for evaluation prompts: the canonical one and paraphrases (all from training templates).
_EVAL_RNG_SEED = 777


@dataclass(frozen=True)
class Case:
    colour: str
    background: str
    direction: str
    shape: str
    prompt: str
    seed: int


@dataclass(frozen=True)
class Result:
    case: Case
    object_colour: str | None
    background: str
    direction: str

    @property
    def scores(self) -> tuple[bool, bool, bool]:
        c = self.case
        return self.object_colour == c.colour, self.background == c.background, self.direction == c.direction


def held_out_cases(seeds: int) -> list[Case]:
    """`seeds` prompts per held-out combination; the first uses the canonical wording, later ones paraphrases."""
    rng = np.random.default_rng(_EVAL_RNG_SEED)
    cases = []
    for colour, background, direction in sorted(dataset.HELD_OUT):
        for seed in range(seeds):
            spec = dataset.held_out_spec(rng, colour, background, direction)
            shape = spec.objects[0].shape
            prompt = (dataset.canonical_caption(colour, shape, direction, background) if seed == 0
                      else dataset.caption(spec, rng))
            cases.append(Case(colour, background, direction, shape, prompt, seed))
    return cases


def evaluate(model: DemoModel, cases: list[Case], settings, log=print) -> list[Result]:
    results = []
    for case in cases:
        video = model.video(case.prompt, replace(settings, seed=case.seed))
        reading = read_video(video)
        result = Result(case, reading.object_colour, reading.background, reading.direction)
        results.append(result)
        marks = "".join("ok " if s else "NO " for s in result.scores)
        log(f"{marks} {case.prompt!r} seed {case.seed} -> object {reading.object_colour}, background "
            f"{reading.background}, {reading.direction} (dx {reading.travel[0]:+.1f}, dy {reading.travel[1]:+.1f})")
    return results


def evaluate_reconstruction(vae, cases: list[Case], log=print) -> list[Result]:
    """The same scoring on the VAE round trip of ground-truth clips: the ceiling the DiT can reach."""
    rng = np.random.default_rng(_EVAL_RNG_SEED)
    results = []
    for case in cases:
        clip = dataset.render(dataset.held_out_spec(rng, case.colour, case.background, case.direction))
        with torch.no_grad():
            pixels = vae.decode(vae.encode(dataset.to_model_range(clip)[None]))[0]  # [3, T, H, W]
        video = ((pixels.permute(1, 2, 3, 0) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()
        reading = read_video(video)
        results.append(Result(case, reading.object_colour, reading.background, reading.direction))
    log(f"VAE round trip of {len(cases)} ground-truth clips")
    return results


def table(results: list[Result]) -> str:
    """Markdown: accuracy per criterion over all held-out samples, and per direction."""
    def row(name: str, subset: list[Result]) -> str:
        correct = np.array([r.scores for r in subset], dtype=float)  # [N, 3]
        cells = " | ".join(f"{100 * m:.0f}% ({int(round(m * len(subset)))}/{len(subset)})" for m in correct.mean(0))
        return f"| {name} | {cells} |"

    lines = ["| held-out samples | object colour | background colour | motion direction |", "|---|---|---|---|",
             row(f"all ({len(dataset.HELD_OUT)} combinations)", results)]
    for direction in dataset.DIRECTIONS:
        lines.append(row(f"moving {direction}", [r for r in results if r.case.direction == direction]))
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Evaluate the demo model on held-out combinations.")
    parser.add_argument("--seeds", type=int, default=3, help="videos per held-out combination")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--cfg", type=float, default=DEFAULT_CFG)
    parser.add_argument("--shift", type=float, default=DEFAULT_SHIFT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vae-only", action="store_true",
                        help="score VAE reconstructions of ground-truth clips instead (the DiT's ceiling)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.time()
    settings = sampler_settings(0, args.steps, args.cfg, args.shift)
    cases = held_out_cases(args.seeds)
    if args.vae_only:
        results = evaluate_reconstruction(load_vae(VAE_FILE), cases)
    else:
        results = evaluate(DemoModel.load(), cases, settings)
    how = "VAE round trips" if args.vae_only else (
        f"videos ({settings.solver}, {settings.steps} steps, cfg {settings.cfg}, shift {settings.shift})")
    print(f"\n{len(results)} {how} in {time.time() - started:.0f} s\n")
    print(table(results))


if __name__ == "__main__":
    main()
