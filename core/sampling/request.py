"""Everything that decides one sampling run, in one frozen record (`run_sampling` runs it)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..cache.step_cache import StepCacheSettings
from .branch import BranchConditioning
from .conditioning import ImageConditioning
from .long_video import LongVideoSettings
from .settings import SamplerSettings


@dataclass(frozen=True, eq=False)
class SamplingRequest:
    """One sampling run.

    - `dit`: velocity model `dit(x, t, context, **inputs)` (the Wan2.2 high-noise expert when
      `dit_low_noise` is set).
    - `positive` / `negative`: encoded text, a [B, L, D] tensor or a list of [L_i, D]; `positive` may
      be an encoded `PromptSchedule` (one prompt per stretch of a long video). `negative` may be None
      only where every guidance scale is 1.
    - start: exactly one of `shape` [B, C, T, H, W] (from seeded noise) or `latents` (refine: noised to
      the first sigma; needed for denoise < 1 / start_sigma / start_step). With a `branch`, `shape`
      may be left out (batch 1 of the branch's latent shape).
    - `image`: start-image conditioning (I2V concat or TI2V known first frame).
    - `branch`: VACE / Animate inputs; its reference frames are sampled and then dropped.
    - `long_video`: context windows over latent time (any length); without it one window spans the clip.
    - `step_cache`: skip DiT evaluations while the output barely changes (one cache per window).
    - `device`: where to sample; default: where `latents` are, else where the DiT's weights are.
    """

    dit: Any
    positive: Any
    negative: Any = None
    settings: SamplerSettings = SamplerSettings()
    shape: Optional[tuple] = None
    latents: Optional[torch.Tensor] = None
    dit_low_noise: Any = None
    image: Optional[ImageConditioning] = None
    branch: Optional[BranchConditioning] = None
    long_video: Optional[LongVideoSettings] = None
    step_cache: Optional[StepCacheSettings] = None
    device: Any = None

    def __post_init__(self) -> None:
        for name, kind in (("settings", SamplerSettings), ("image", ImageConditioning),
                           ("branch", BranchConditioning), ("long_video", LongVideoSettings),
                           ("step_cache", StepCacheSettings)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"SamplingRequest.{name} must be a {kind.__name__}, got {type(value).__name__}.")
