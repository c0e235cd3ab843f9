"""MODEL both ways inside a real ComfyUI (skipped unless KINEMA_COMFYUI is set): KinemaDiTLoader's native MODEL
under native nodes, and native UNETLoader MODELs in KinemaSampler.

One run of tests/host_native_model_script.py (ComfyUI's Python, one process) measures everything; the tests
judge its numbers. The tiny DiT reads 4096-wide text, as native ComfyUI's Wan detection assumes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kinema
from tiny_dit import save_tiny_dit
from tiny_lora import block_modules, comfy_lora, lightx2v_extras, random_patches
from tiny_vae import save_tiny_vae

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(not os.environ.get("KINEMA_COMFYUI"), reason="needs a ComfyUI checkout in KINEMA_COMFYUI")]

REPO = Path(kinema.__file__).resolve().parent
SCRIPT = Path(__file__).with_name("host_native_model_script.py")
DIT, LORA, VAE = "tiny_wan_native_t2v.safetensors", "tiny_wan_native_lora.safetensors", "tiny_wan_2.1_vae.safetensors"
FP8_DIT = "tiny_wan_native_t2v_fp8_scaled.safetensors"


def _tiny_native_dit():
    """A random diffusers Wan T2V transformer as native ComfyUI detects Wan: heads of 128, 4096-wide text."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(21)
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=128, in_channels=16, out_channels=16,
        text_dim=4096, freq_dim=256, ffn_dim=256, num_layers=1, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", eps=1e-6).eval()


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> dict:
    """The script's numbers, from one ComfyUI process over a models folder of a tiny DiT, LoRA and VAE."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("native_model")
    scratch = folder / "scratch"
    model = _tiny_native_dit()
    (folder / "diffusion_models").mkdir()
    save_tiny_dit(scratch, layout="comfy", variant="t2v", model=model).rename(folder / "diffusion_models" / DIT)
    save_tiny_dit(scratch, layout="comfy", variant="t2v", dtype="fp8_scaled", model=model).rename(
        folder / "diffusion_models" / FP8_DIT)
    (folder / "loras").mkdir()
    lora = {**comfy_lora(random_patches(model, block_modules(model), seed=4)), **lightx2v_extras(model, seed=4)}
    save_file(lora, str(folder / "loras" / LORA))
    (folder / "vae").mkdir()
    save_tiny_vae(scratch / "vae", version="2.1", layout="comfy").rename(folder / "vae" / VAE)
    checkout = os.environ["KINEMA_COMFYUI"]
    python = os.environ.get("KINEMA_COMFYUI_PYTHON", sys.executable)
    done = subprocess.run([python, str(SCRIPT), str(REPO), str(folder), DIT, FP8_DIT, LORA, VAE], cwd=checkout,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": checkout}, timeout=900)
    assert done.returncode == 0, done.stderr[-6000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(result)
    return result


def test_kinema_model_is_a_native_wan_model_with_the_dits_velocity(measured):
    assert measured["model_class"] == "KinemaWAN21" and measured["latent_format"] == "Wan21", measured
    assert measured["flow_sampling"] and measured["shift"] == 8.0, measured  # native Wan2.1's defaults
    assert measured["shift_after_node"] == 3.0, measured  # ModelSamplingSD3 sets the shift as on a native model
    assert measured["velocity_std"] > 0.1, "a flat velocity would prove nothing"
    assert measured["velocity_max_diff"] <= 1e-5, measured
    assert measured["per_frame_t_max_diff"] <= 1e-6, measured  # Wan2.2's per-frame timesteps reach every token


def test_native_model_patches_run_on_kinema_model(measured):
    """EasyCache wraps the diffusion model's forward; TorchCompileModel (KINEMA_HEAVY=1: minutes on the CPU)
    compiles it."""
    assert measured["easycache_finite"] and measured["easycache_skipped"], measured
    assert measured["easycache_skipped"][0][0] > 0, measured  # its wrapper ran and skipped steps
    if "compiled_max_diff" in measured:
        assert measured["compiled_max_diff"] <= 1e-4, measured


def test_native_ksampler_on_kinema_model_makes_a_decodable_video(measured):
    assert measured["ksampler_images"] == [9, 48, 80, 3], measured  # 3 latent frames -> 9 frames of 8x pixels
    assert measured["ksampler_images_finite"] and measured["ksampler_latent_std"] > 0.01, measured


def test_native_lora_on_kinema_model_equals_kinema_lora(measured):
    assert measured["lora_patched_keys"] > 0 and measured["lora_effect"] > 1e-3, measured  # the LoRA changes things
    assert measured["lora_max_diff"] <= 1e-4, measured
    # the LoRA stays on its own MODEL: the plain MODEL and the KINEMA_DIT wire get the original weights back
    assert measured["plain_model_after_lora_max_diff"] <= 1e-6, measured
    assert measured["dit_wire_after_lora_max_diff"] <= 1e-6, measured
    # ComfyUI unloading the models puts the originals back; the LoRA comes back with its MODEL's next load
    assert measured["dit_after_eviction_max_diff"] <= 1e-6, measured
    assert measured["lora_after_eviction_max_diff"] <= 1e-4, measured
    error = measured["fp8_lora_error"] or ""  # fp8 weights: refused, pointing at KinemaLoRA
    assert "quantised" in error and "KinemaLoRA" in error, measured


def test_kinema_sampler_on_native_unet_loader_model_equals_kinema_loader(measured):
    assert measured["sockets_link"] == [True, True, True, True], measured  # ComfyUI's own link validation
    assert measured["unet_sampler_std"] > 0.01, measured
    assert measured["unet_sampler_max_diff"] <= 1e-4, measured
    assert measured["unet_long_video_max_diff"] <= 1e-4, measured  # context windows and the step cache too
