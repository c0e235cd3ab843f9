"""Flow-matching sampling for Wan models: one request record, one engine (`run_sampling`), schedules,
solvers, guidance, expert switching, context windows, branch and image conditioning."""
from .branch import BranchConditioning
from .conditioning import ImageConditioning, i2v_conditioning, ti2v_conditioning
from .engine import run_sampling
from .experts import BOUNDARY_I2V, BOUNDARY_T2V
from .guidance import WAN_NEGATIVE_PROMPT
from .noise import seeded_noise
from .pipeline import generate, sample
from .request import SamplingRequest
from .schedules import Schedule, make_schedule
from .settings import SIGMA_GRIDS, SOLVERS, SamplerSettings

__all__ = [
    "BOUNDARY_I2V", "BOUNDARY_T2V", "BranchConditioning", "ImageConditioning", "SIGMA_GRIDS", "SOLVERS",
    "SamplerSettings", "SamplingRequest", "Schedule", "WAN_NEGATIVE_PROMPT", "generate", "i2v_conditioning",
    "make_schedule", "run_sampling", "sample", "seeded_noise", "ti2v_conditioning",
]
