"""Flow-matching sampling for Wan models: schedules, solvers, guidance, expert switching, loops."""
from .conditioning import ImageConditioning, i2v_conditioning, ti2v_conditioning
from .experts import BOUNDARY_I2V, BOUNDARY_T2V
from .guidance import WAN_NEGATIVE_PROMPT
from .noise import seeded_noise
from .pipeline import generate, sample
from .schedules import Schedule, make_schedule
from .settings import SIGMA_GRIDS, SOLVERS, SamplerSettings

__all__ = [
    "BOUNDARY_I2V", "BOUNDARY_T2V", "ImageConditioning", "SIGMA_GRIDS", "SOLVERS", "SamplerSettings", "Schedule",
    "WAN_NEGATIVE_PROMPT", "generate", "i2v_conditioning", "make_schedule", "sample", "seeded_noise",
    "ti2v_conditioning",
]
