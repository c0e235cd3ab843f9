"""`python -m bench.interpolate [--size 128] [--seconds 1]`: frame-rate conversion quality and speed.

Renders the synthetic moving scene of the tests (textured disc over a panning texture, exact at any
time) at each source rate and at the target rate, converts, and prints the PSNR of the in-between
frames against the truth (on-frame outputs are copies for every method) and the time per output frame.
"""
from __future__ import annotations

import argparse
import time

import torch

from kinema.core.interp import FrameRates, get_interpolator, retime
from kinema.tests.moving_scene import render_clip

RATIOS = ((16, 30), (24, 30), (15, 30), (30, 24))
METHODS = (("blend", {}), ("dis_flow", {"preset": "ultrafast"}), ("dis_flow", {"preset": "fast"}),
           ("dis_flow", {"preset": "medium"}))
MOTIONS = {"moderate": (60.0, 25.0), "fast": (120.0, 50.0)}  # disc speed in pixels per second at size 96


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.interpolate", description=__doc__)
    parser.add_argument("--size", type=int, default=96, help="frame side in pixels")
    parser.add_argument("--seconds", type=float, default=0.75, help="clip length (the disc stays in the frame)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scale = args.size / 96  # keep the motion the same fraction of the frame at every size
    print(f"{'motion':<9} {'ratio':<7} {'method':<20} {'PSNR dB':>8} {'ms/frame':>9}")
    for motion, (vx, vy) in MOTIONS.items():
        scene = dict(size=args.size, disc_speed=(vx * scale, vy * scale), background_speed=(20 * scale, 8 * scale))
        for fps_in, fps_out in RATIOS:
            source = render_clip(fps_in, args.seconds, **scene)
            rates = FrameRates.of(fps_in, fps_out)
            # the converted clip ends on the last source frame: compare with the truth up to there
            truth = render_clip(fps_out, args.seconds, **scene)[:rates.output_count(len(source))]
            between = torch.tensor([rates.source_position(k).denominator != 1 for k in range(len(truth))])
            for method, options in METHODS:
                interpolator = get_interpolator(method, **options)
                started = time.perf_counter()
                out = torch.cat(list(retime(source.split(8), fps_in, fps_out, interpolator)))
                per_frame = (time.perf_counter() - started) / len(out) * 1e3
                mse = ((out[between] - truth[between]) ** 2).mean()
                label = method + (f" ({options['preset']})" if options else "")
                print(f"{motion:<9} {fps_in}->{fps_out:<3} {label:<20} {10 * torch.log10(1 / mse).item():>8.2f} "
                      f"{per_frame:>9.1f}")


if __name__ == "__main__":
    main()
