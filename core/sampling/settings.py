"""The knobs of one sampling run, validated once when they are made."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SOLVERS = ("unipc", "euler", "dpmpp_2m")
SIGMA_GRIDS = ("wan", "diffusers")


@dataclass(frozen=True)
class SamplerSettings:
    """How to sample. Defaults follow the official Wan2.1 T2V recipe (wan_models.md 7.4)."""

    steps: int = 50
    cfg: float = 5.0  # guidance scale; with two experts, the high-noise expert's scale
    shift: float = 5.0  # SD3-style time shift of the sigma grid
    solver: str = "unipc"
    seed: int = 0
    # Partial denoising, ComfyUI convention: run `steps` steps, the last ones of a
    # schedule of int(steps / denoise) steps, starting from given latents.
    denoise: float = 1.0
    # Alternative starts ("refine from sigma s"): a noise level in (0, 1) reached by a
    # grid of `steps` steps of the same shifted shape, or a step index of the full grid.
    start_sigma: Optional[float] = None
    start_step: Optional[int] = None
    # "wan": the official grid (UniPC/Euler start at 0.999, DPM++ at 1.0, integer timesteps);
    # "diffusers": UniPCMultistepScheduler(use_flow_sigmas) grid (starts at 1 - 1e-6).
    sigma_grid: str = "wan"
    # Wan2.2 A14B: the high-noise expert runs while t >= boundary * 1000. None = from the
    # model (0.900 for image-conditioned experts, else 0.875).
    boundary: Optional[float] = None
    cfg_low_noise: Optional[float] = None  # low-noise expert's scale; None = cfg

    def __post_init__(self) -> None:
        _check(isinstance(self.steps, int) and not isinstance(self.steps, bool) and self.steps >= 1,
               f"steps must be an integer >= 1, got {self.steps!r}; use e.g. 50 (Wan2.1) or 40 (Wan2.2 A14B).")
        _check(_is_number(self.cfg) and self.cfg >= 0,
               f"cfg must be a number >= 0, got {self.cfg!r}; 1.0 disables guidance, Wan uses 5.0.")
        _check(self.cfg_low_noise is None or (_is_number(self.cfg_low_noise) and self.cfg_low_noise >= 0),
               f"cfg_low_noise must be None or a number >= 0, got {self.cfg_low_noise!r}.")
        _check(_is_number(self.shift) and self.shift > 0,
               f"shift must be a number > 0, got {self.shift!r}; Wan uses 5.0 (12.0 for Wan2.2 T2V-A14B).")
        _check(self.solver in SOLVERS,
               f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}.")
        _check(self.sigma_grid in SIGMA_GRIDS,
               f"unknown sigma_grid {self.sigma_grid!r}; choose one of {', '.join(SIGMA_GRIDS)}.")
        _check(isinstance(self.seed, int) and 0 <= self.seed < 2**64,
               f"seed must be an integer in [0, 2**64), got {self.seed!r}.")
        _check(_is_number(self.denoise) and 0 < self.denoise <= 1,
               f"denoise must be in (0, 1], got {self.denoise!r}; 1.0 samples from pure noise.")
        _check(self.start_sigma is None or (_is_number(self.start_sigma) and 0 < self.start_sigma < 1),
               f"start_sigma must be None or in (0, 1), got {self.start_sigma!r}; use denoise=1.0 to start "
               "from pure noise.")
        _check(self.start_step is None or (isinstance(self.start_step, int) and 0 <= self.start_step < self.steps),
               f"start_step must be None or an integer in [0, steps={self.steps}), got {self.start_step!r}.")
        starts = [name for name, given in (("denoise", self.denoise != 1), ("start_sigma", self.start_sigma is not None),
                                            ("start_step", self.start_step is not None)) if given]
        _check(len(starts) <= 1,
               f"give only one way to start part-way, got {' and '.join(starts)}; keep one and reset the others "
               "(denoise=1.0, start_sigma=None, start_step=None).")
        _check(self.boundary is None or (_is_number(self.boundary) and 0 < self.boundary < 1),
               f"boundary must be None or in (0, 1), got {self.boundary!r}; Wan2.2 uses 0.875 (T2V) / 0.9 (I2V).")

    @property
    def partial(self) -> bool:
        """True when sampling starts part-way down the noise levels (needs input latents)."""
        return self.denoise != 1 or self.start_sigma is not None or self.start_step is not None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)
