"""Native ComfyUI nodes and Kinema's side by side in one ComfyUI process; run by tests/test_host_ecosystem.py.

Runs with ComfyUI's Python, cwd = the ComfyUI checkout (on PYTHONPATH). argv: <pack dir> <models dir> <check>;
prints one JSON line of measured differences for the test to judge (the script itself asserts nothing).
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import torch
from comfy.cli_args import args

args.cpu = True
import folder_paths  # noqa: E402  (after the CPU switch, as ComfyUI's own start-up does)
import nodes as comfy_nodes  # noqa: E402  ComfyUI's built-in nodes

FOLDERS = ("diffusion_models", "text_encoders", "vae", "loras")
DIT = "wan2.1_t2v_1.3B_fp16.safetensors"
TEXT_ENCODER = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
SAMPLER = dict(steps=3, cfg=1.0, shift=5.0, solver="euler", boundary=0.0, cfg_low_noise=0.0)


def load_pack(pack_dir: str):
    """Imports the pack the way ComfyUI's custom-node loader does (a package named after the folder)."""
    spec = importlib.util.spec_from_file_location("kinema_pack", pack_dir + "/__init__.py",
                                                  submodule_search_locations=[pack_dir])
    pack = importlib.util.module_from_spec(spec)
    sys.modules["kinema_pack"] = pack
    spec.loader.exec_module(pack)
    return pack


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def latent_convention(kinema, vae_name: str) -> dict:
    """KinemaSampler's LATENT through native VAEDecode and KinemaVAEDecode; native VAEEncode and KinemaVAEEncode
    into KinemaSampler at denoise 0.6, and the Python API's own path (normalised latents end to end)."""
    from kinema_pack.core.sampling import SamplerSettings, sample
    from kinema_pack.core.vae.config import PUBLISHED_LATENT_STATS

    n = kinema.NODE_CLASS_MAPPINGS
    vae = n["KinemaVAELoader"]().load(vae_name, "default")[0]
    native_vae = comfy_nodes.VAELoader().load_vae(vae_name)[0]
    dit = n["KinemaDiTLoader"]().load(DIT, "default", "sdpa")[0]
    encoder = n["KinemaTextEncoderLoader"]().load(TEXT_ENCODER, "default")[0]
    cond = n["KinemaTextEncode"]().encode(encoder, "a red ball rolls", "", unload_encoder=True)[0]
    empty = n["KinemaEmptyLatent"]().make(vae, "custom (width x height)", 32, 32, 5, 0.0, 16)[0]
    sampled = n["KinemaSampler"]().sample(dit, cond, empty, seed=1, denoise=1.0, **SAMPLER)[0]
    native_images = comfy_nodes.VAEDecode().decode(native_vae, sampled)[0]  # [5, 32, 32, 3]
    kinema_images = n["KinemaVAEDecode"]().decode(vae, sampled)[0]

    # a smooth moving pattern, so the VAE sees something image-like
    t, y, x = torch.meshgrid(torch.arange(5.0), torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    pixels = torch.stack([(x + 0.1 * t) % 1, y, 0.5 + 0.4 * torch.sin(6 * x * y + t)], dim=-1)  # [5, 32, 32, 3]
    native_latent = comfy_nodes.VAEEncode().encode(native_vae, pixels)[0]
    kinema_latent = n["KinemaVAEEncode"]().encode(vae, pixels)[0]
    refine = dict(seed=7, denoise=0.6, **SAMPLER)
    from_native = n["KinemaSampler"]().sample(dit, cond, native_latent, **refine)[0]["samples"]
    from_kinema = n["KinemaSampler"]().sample(dit, cond, kinema_latent, **refine)[0]["samples"]
    fresh = n["KinemaSampler"]().sample(dit, cond, kinema_latent, **{**refine, "denoise": 1.0})[0]["samples"]

    # The Python API's convention: normalised latents from core encode straight into core sample.
    normalised = vae.model.encode(pixels.permute(3, 0, 1, 2)[None] * 2 - 1)  # [1, 16, 2, 4, 4]
    settings = SamplerSettings(seed=7, denoise=0.6, steps=3, cfg=1.0, shift=5.0, solver="euler")
    api = sample(dit.model, [cond.positive], [cond.negative], settings=settings, latents=normalised)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1, 1) for v in PUBLISHED_LATENT_STATS[16])
    return {
        "native_vae_dtype": str(native_vae.vae_dtype),
        "decode_shapes": [list(native_images.shape), list(kinema_images.shape)],
        "decode_max_diff": _max_diff(native_images, kinema_images),
        "decoded_pixel_std": float(kinema_images.std()),
        "encode_max_diff": _max_diff(native_latent["samples"], kinema_latent["samples"]),
        "latent_std": float(kinema_latent["samples"].std()),
        "refine_max_diff": _max_diff(from_native, from_kinema),
        "refine_vs_api_max_diff": _max_diff(from_kinema, api * std + mean),
        "refine_vs_fresh_max_diff": _max_diff(from_kinema, fresh),
    }


def _tiny_umt5_clip(file_name: str, dims: dict):
    """ComfyUI's own CLIPLoader (type 'wan') on a tiny umT5 file. ComfyUI sizes umT5 from a fixed XXL config and
    recognises it by its 24th block, so for the tiny file those two lookups are pointed at its real size."""
    import tempfile

    import comfy.sd
    import comfy.sd1_clip
    from safetensors import safe_open

    with safe_open(folder_paths.get_full_path("text_encoders", file_name), "pt") as f:
        vocab = f.get_slice("shared.weight").get_shape()[0]
    config = {**json.load(open(Path(comfy.sd1_clip.__file__).parent / "text_encoders" / "umt5_config_xxl.json")),
              **dims, "vocab_size": vocab}
    path = Path(tempfile.mkdtemp()) / "umt5_config_tiny.json"
    path.write_text(json.dumps(config))
    original_init = comfy.sd1_clip.SDClipModel.__init__

    def tiny_init(self, *args, textmodel_json_config=None, **kwargs):
        if str(textmodel_json_config).endswith("umt5_config_xxl.json"):
            textmodel_json_config = str(path)
        original_init(self, *args, textmodel_json_config=textmodel_json_config, **kwargs)

    comfy.sd1_clip.SDClipModel.__init__ = tiny_init
    comfy.sd.detect_te_model = lambda sd: comfy.sd.TEModel.T5_XXL
    return comfy_nodes.CLIPLoader().load_clip(file_name, type="wan")[0]


def text_bridge(kinema, text_encoder_name: str, dims_json: str) -> dict:
    """Native CLIPTextEncode through KinemaConditioningFromNative against KinemaTextEncode on Kinema's loader of the
    same file; KinemaTextEncode given the native CLIP; KinemaConditioningToNative back to CLIPTextEncode's tensor."""
    n = kinema.NODE_CLASS_MAPPINGS
    args.fp32_text_enc = True  # ComfyUI's --fp32-text-enc (its CPU default is fp16), as Kinema's loader at fp32
    clip = _tiny_umt5_clip(text_encoder_name, json.loads(dims_json))
    prompt, negative = "A cat walks slowly on the green grass in the warm morning light.", "blurry, static"
    native = [comfy_nodes.CLIPTextEncode().encode(clip, text)[0] for text in (prompt, negative)]
    bridged = n["KinemaConditioningFromNative"]().convert(*native)[0]
    encoder = n["KinemaTextEncoderLoader"]().load(text_encoder_name, "fp32")[0]
    ours = n["KinemaTextEncode"]().encode(encoder, prompt, negative, True)[0]
    via_clip = n["KinemaTextEncode"]().encode(clip, prompt, negative, True)[0]
    back = n["KinemaConditioningToNative"]().convert(ours)
    return {
        "native_shape": list(native[0][0][0].shape),
        "shapes": [list(bridged.positive.shape), list(ours.positive.shape), list(bridged.negative.shape),
                   list(ours.negative.shape)],
        "bridge_max_diff": max(_max_diff(bridged.positive, ours.positive), _max_diff(bridged.negative, ours.negative)),
        "clip_input_max_diff": max(_max_diff(via_clip.positive, ours.positive),
                                   _max_diff(via_clip.negative, ours.negative)),
        "to_native_max_diff": max(_max_diff(back[0][0][0], native[0][0][0]), _max_diff(back[1][0][0], native[1][0][0])),
        "embedding_std": float(ours.positive.std()),
        "native_dtype": str(next(clip.cond_stage_model.parameters()).dtype),
    }


CHECKS = {"latent_convention": latent_convention, "text_bridge": text_bridge}


def main() -> None:
    pack_dir, models, check, *rest = sys.argv[1:]
    for folder in FOLDERS:
        folder_paths.add_model_folder_path(folder, str(Path(models) / folder), is_default=True)
    kinema = load_pack(pack_dir)
    with torch.no_grad():
        result = CHECKS[check](kinema, *rest)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
