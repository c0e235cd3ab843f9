"""Where the shipped demo model lives (ComfyUI-style model folders) and where training runs go."""
from __future__ import annotations

from pathlib import Path

DEMO_MODEL = Path(__file__).resolve().parent.parent / "demo_model"
DIT_FILE = DEMO_MODEL / "diffusion_models" / "kinema_demo_dit.safetensors"
TEXT_FILE = DEMO_MODEL / "text_encoders" / "kinema_demo_umt5.safetensors"
VAE_FILE = DEMO_MODEL / "vae" / "kinema_demo_vae.safetensors"
RUNS = DEMO_MODEL / "runs"  # training scratch, git-ignored
UPSCALE_FILE = DEMO_MODEL / "latent_upscale_models" / "kinema_demo_latent_upscale_x2.safetensors"
