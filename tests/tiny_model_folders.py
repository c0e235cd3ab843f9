"""A ComfyUI-style models folder (diffusion_models/, text_encoders/, vae/, loras/) of tiny random
models, saved under the file names the example workflows use, for node, workflow, CLI and host tests.

The DiTs are built like tests/tiny_dit.py's, but with text_dim = the tiny umT5's width so that
the text encoder's output feeds them as in a real pipeline; each LoRA is drawn for the expert it
patches (lightx2v layout: low-rank pairs plus full bias/norm/head diffs).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from safetensors.torch import save_file

from tiny_clip_vision import save_tiny_clip_vision
from tiny_dit import IMAGE_DIM, make_tiny_diffusers_dit, save_tiny_dit
from tiny_lora import block_modules, comfy_lora, lightx2v_extras, random_patches
from tiny_umt5 import TINY_DIMS, save_tiny_umt5
from tiny_vae import save_tiny_vae

# file name -> (variant, layout, stored dtype, seed)
DITS = {
    "wan2.1_t2v_1.3B_fp16.safetensors": ("t2v", "comfy", torch.float16, 0),
    "wan2.2_ti2v_5B_fp16.safetensors": ("ti2v", "comfy", torch.float16, 1),
    "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors": ("t2v", "comfy_prefixed", "fp8_scaled", 2),
    "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors": ("t2v", "comfy_prefixed", "fp8_scaled", 3),
    "tiny_wan2.2_i2v.safetensors": ("i2v", "comfy", torch.float32, 4),
    "wan2.2_animate_14B_bf16.safetensors": ("animate", "comfy", torch.bfloat16, 5),
    "wan2.1_vace_1.3B_fp16.safetensors": ("vace", "comfy", torch.float16, 6),
    "wan2.1_t2v_14B_fp8_scaled.safetensors": ("t2v", "comfy", "fp8_scaled", 7),
    "kinema_demo_dit.safetensors": ("t2v", "comfy", torch.float32, 8),  # stands in for demo_model/'s DiT
    "wan2.1_i2v_480p_14B_fp16.safetensors": ("i2v_clip", "comfy", torch.float16, 9),
    "wan2.1_i2v_720p_14B_fp16.safetensors": ("i2v_clip", "comfy", torch.float16, 10),
    "wan2.1_flf2v_720p_14B_fp16.safetensors": ("flf2v", "comfy", torch.float16, 11),
    "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors": ("i2v", "comfy_prefixed", "fp8_scaled", 12),
    "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors": ("i2v", "comfy_prefixed", "fp8_scaled", 13),
}
CLIP_VISION = "clip_vision_h.safetensors"  # ComfyUI's layout, fp16 as Comfy-Org ships it
# LoRA file name -> the DiT file it was trained for
LORAS = {
    "wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors": "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
    "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors": "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors",
}
VAES = {"wan_2.1_vae.safetensors": "2.1", "wan2.2_vae.safetensors": "2.2", "kinema_demo_vae.safetensors": "2.1"}
TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
DEMO_TEXT_ENCODER = "kinema_demo_umt5.safetensors"  # the demo's is saved like ComfyUI's fp16 umT5
CHANNELS = {"t2v": (16, 16), "i2v": (36, 16), "ti2v": (48, 48), "i2v_clip": (36, 16), "flf2v": (36, 16)}
# The tiny CLIP tower: 32 px input in 16 px patches = 5 tokens per image, IMAGE_DIM wide (one 64-wide head).
CLIP_SIZE, CLIP_PATCH, CLIP_TOKENS = 32, 16, 5


def tiny_dit_model(variant: str, seed: int):
    """A random diffusers WanTransformer3DModel (2 heads of 128, 1 block; VACE/Animate: tests/tiny_dit.py's
    4-block branch models) reading the tiny umT5's output."""
    from diffusers import WanTransformer3DModel

    if variant in ("animate", "vace"):
        return make_tiny_diffusers_dit(variant, seed=seed, text_dim=TINY_DIMS["d_model"])
    torch.manual_seed(seed)
    in_channels, out_channels = CHANNELS[variant]
    image = {} if variant not in ("i2v_clip", "flf2v") else dict(image_dim=IMAGE_DIM, added_kv_proj_dim=256)
    if variant == "flf2v":
        image["pos_embed_seq_len"] = 2 * CLIP_TOKENS  # start and end image
    model = WanTransformer3DModel(**image,
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=128, in_channels=in_channels,
        out_channels=out_channels, text_dim=TINY_DIMS["d_model"], freq_dim=256, ffn_dim=256, num_layers=1,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6,
    )
    return model.eval()


def tiny_clip_model(seed: int = 20):
    """A random CLIPVisionModelWithProjection as wide as the tiny DiTs' CLIP input (tiny_clip_vision's structure)."""
    from tiny_clip_vision import make_tiny_clip_vision

    return make_tiny_clip_vision(width=IMAGE_DIM, layers=2, heads=1, seed=seed, image_size=CLIP_SIZE, patch=CLIP_PATCH)


def make_model_folders(root: Path) -> Path:
    """Writes every model the example workflows name (once per root) and returns the root."""
    done = root / ".complete"
    if done.exists():
        return root
    scratch = root / "scratch"
    models = {}
    for name, (variant, layout, dtype, seed) in DITS.items():
        models[name] = tiny_dit_model(variant, seed)
        path = save_tiny_dit(scratch / name, layout=layout, variant=variant, dtype=dtype, model=models[name])
        _place(path, root / "diffusion_models" / name)
    (root / "loras").mkdir(exist_ok=True)
    for seed, (name, dit_name) in enumerate(LORAS.items()):
        model = models[dit_name]
        tensors = {**comfy_lora(random_patches(model, block_modules(model), seed=seed)),
                   **lightx2v_extras(model, seed=seed)}
        save_file(tensors, str(root / "loras" / name))
    for name, version in VAES.items():
        _place(save_tiny_vae(scratch / name, version=version, layout="comfy"), root / "vae" / name)
    _place(save_tiny_umt5(scratch / "umt5", layout="comfy_fp8_scaled"), root / "text_encoders" / TEXT_ENCODER)
    _place(save_tiny_clip_vision(scratch / "clip", "comfy", tiny_clip_model(), dtype=torch.float16),
           root / "clip_vision" / CLIP_VISION)
    _place(save_tiny_umt5(scratch / "demo_umt5", layout="comfy"), root / "text_encoders" / DEMO_TEXT_ENCODER)
    shutil.rmtree(scratch)
    done.touch()
    return root


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), str(target))


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    """The tiny models folder, built once per test session (import this fixture into a test module)."""
    return make_model_folders(tmp_path_factory.getbasetemp() / "kinema_models")
