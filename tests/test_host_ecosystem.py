"""Kinema's nodes mixed with native ComfyUI nodes, inside a real ComfyUI (skipped unless KINEMA_COMFYUI is set).

Each check runs tests/host_ecosystem_script.py with ComfyUI's Python (KINEMA_COMFYUI_PYTHON, default this
interpreter), which builds native and Kinema nodes in one process and prints the measured differences.
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
from comfyui_server import get_json, running_comfyui
from kinema.core.video import read_video
from tiny_model_folders import model_root  # noqa: F401  (fixture)
from tiny_vae import official_state_dict

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(not os.environ.get("KINEMA_COMFYUI"), reason="needs a ComfyUI checkout in KINEMA_COMFYUI")]

REPO = Path(kinema.__file__).resolve().parent
SCRIPT = Path(__file__).with_name("host_ecosystem_script.py")
RELEASED_VAE = "wan_2.1_vae_random_released_widths.safetensors"


def run_in_comfyui(models: Path, check: str, *extra: str) -> dict:
    checkout = os.environ["KINEMA_COMFYUI"]
    python = os.environ.get("KINEMA_COMFYUI_PYTHON", sys.executable)
    done = subprocess.run([python, str(SCRIPT), str(REPO), str(models), check, *extra], cwd=checkout,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": checkout}, timeout=900)
    assert done.returncode == 0, done.stderr[-6000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def models(model_root, tmp_path_factory):  # noqa: F811
    """The tiny models, plus a random Wan2.1 VAE at the released widths (ComfyUI's VAE loader assumes them)."""
    from diffusers import AutoencoderKLWan
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("ecosystem_models")
    for name in ("diffusion_models", "text_encoders", "loras"):
        (folder / name).symlink_to(model_root / name, target_is_directory=True)
    (folder / "vae").mkdir()
    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=96, z_dim=16, num_res_blocks=2).eval()  # Wan2.1's released widths
    tensors = official_state_dict(vae, "2.1")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "vae" / RELEASED_VAE))
    return folder


def test_native_vae_nodes_and_kinema_share_the_latent_convention(models):
    result = run_in_comfyui(models, "latent_convention", RELEASED_VAE)
    print(result)
    assert result["decode_shapes"] == [[5, 32, 32, 3], [5, 32, 32, 3]]
    assert result["decoded_pixel_std"] > 0.01, "the decode gave flat images: the comparison would prove nothing"
    assert result["decode_max_diff"] <= 1e-5, result  # native VAEDecode == KinemaVAEDecode on the sampler's LATENT
    assert result["encode_max_diff"] <= 1e-4 * max(1.0, result["latent_std"]), result  # VAEEncode == KinemaVAEEncode
    assert result["refine_max_diff"] <= 1e-4, result  # native VAEEncode -> KinemaSampler at denoise 0.6
    assert result["refine_vs_api_max_diff"] <= 1e-4, result  # == the Python API's normalised path
    assert result["refine_vs_fresh_max_diff"] > 1e-2, "denoise 0.6 ignored the input latent"


DEMOS = {"demo_t2v": (17, 64, 64, 16), "demo_2min_30fps": (3601, 128, 128, 30)}  # frames, width, height, fps
HEAVY = pytest.mark.skipif(not os.environ.get("KINEMA_HEAVY"), reason="minutes on a CPU: KINEMA_HEAVY=1 runs it")


@pytest.mark.parametrize("name", ["demo_t2v", pytest.param("demo_2min_30fps", marks=HEAVY)])
def test_demo_runs_in_a_fresh_comfyui_with_nothing_copied(tmp_path, name):
    """custom_nodes/ holds only the link to the pack and models/ nothing: the pack registers demo_model/'s folders."""
    base = tmp_path / "comfyui"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "kinema").symlink_to(REPO, target_is_directory=True)
    with running_comfyui(base) as url:
        info = get_json(url + "/object_info/KinemaDiTLoader")["KinemaDiTLoader"]
        assert "kinema_demo_dit.safetensors" in info["input"]["required"]["model_name"][0]
        command = [sys.executable, "-m", "kinema", "submit", str(REPO / "workflows" / f"{name}_api.json"),
                   "--server", url, "--output", str(tmp_path / "downloads"), "--timeout", "1800"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=2000)
    assert done.returncode == 0, f"{done.stderr}\n--- ComfyUI log ---\n{(base / 'comfyui.log').read_text()[-4000:]}"
    written = list((base / "output").rglob("*.mp4"))
    assert len(written) == 1 and written[0].stat().st_size > 0, written
    assert not list((base / "models").rglob("*.safetensors")), "nothing may be copied into ComfyUI's models"
    video = read_video(written[0])
    assert (video.frame_count, video.frames.shape[2], video.frames.shape[1], video.fps) == DEMOS[name]


def test_native_clip_text_encode_through_the_bridge_equals_kinema_text_encode(models):
    from tiny_umt5 import TINY_DIMS

    result = run_in_comfyui(models, "text_bridge", "kinema_demo_umt5.safetensors", json.dumps(TINY_DIMS))
    print(result)
    assert result["native_shape"] == [1, 512, TINY_DIMS["d_model"]]  # ComfyUI pads every prompt to 512 tokens
    positive, ours, negative, ours_negative = result["shapes"]
    assert positive == ours and negative == ours_negative and ours[0] < 512
    assert result["embedding_std"] > 0.01
    assert result["bridge_max_diff"] <= 1e-4, result  # CLIPTextEncode -> bridge == KinemaTextEncode
    assert result["clip_input_max_diff"] <= 1e-4, result  # KinemaTextEncode on the native CLIP
    assert result["to_native_max_diff"] <= 1e-4, result  # KinemaConditioningToNative == CLIPTextEncode's tensor
