"""Kinema's MODEL in native nodes and native MODELs in Kinema's sampler, in one ComfyUI process; run by
tests/test_host_native_model.py.

Runs with ComfyUI's Python, cwd = the ComfyUI checkout (on PYTHONPATH). argv: <pack dir> <models dir>
<dit file> <its fp8 file> <lora file> <vae file>; prints one JSON line of measured differences for the test
to judge (asserts nothing).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
from pathlib import Path

import torch
from comfy.cli_args import args

args.cpu = True
import folder_paths  # noqa: E402  (after the CPU switch, as ComfyUI's own start-up does)
import nodes as comfy_nodes  # noqa: E402  ComfyUI's built-in nodes

from host_ecosystem_script import FOLDERS, _max_diff, load_pack  # noqa: E402

SIGMA = 0.7
LORA_STRENGTH = 0.8


def _velocity_of_model(patcher, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """A native MODEL's velocity the way its samplers get it: apply_model's denoised x0 -> (x - x0) / sigma."""
    import comfy.model_management as mm

    mm.load_models_gpu([patcher])
    patcher.pre_run()  # what a sampling run does first: this patcher's weights (LoRAs) are the ones in use
    sigma = torch.full((x.shape[0],), SIGMA)
    denoised = patcher.model.apply_model(x, sigma, c_crossattn=context)
    return (x - denoised) / SIGMA


def comfy_nodes_extra(name: str):
    import importlib

    return importlib.import_module(f"comfy_extras.{name}")


@contextlib.contextmanager
def _logged(word: str):
    """The log lines with `word` said while the block runs (native nodes report through logging)."""
    messages = []

    class Catch(logging.Handler):
        def emit(self, record):
            if word in record.getMessage():
                messages.append(record.getMessage())

    handler, root = Catch(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield messages
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _compiled_vs_plain(model, positive, negative, latent) -> float:
    """TorchCompileModel on Kinema's MODEL: KSampler's result against the uncompiled model's."""
    compiled = comfy_nodes_extra("nodes_torch_compile").TorchCompileModel.execute(model, "inductor")[0]
    runs = [comfy_nodes.KSampler().sample(m, 5, 2, 1.0, "euler", "simple", positive, negative, latent, denoise=1.0)[0]
            for m in (model, compiled)]
    return _max_diff(runs[1]["samples"], runs[0]["samples"])


def _sampler_args(seed: int) -> dict:
    return dict(seed=seed, steps=3, cfg=2.0, shift=5.0, solver="euler", denoise=1.0, boundary=0.0, cfg_low_noise=0.0)


def run(kinema, dit_name: str, fp8_name: str, lora_name: str, vae_name: str) -> dict:
    from kinema_pack.nodes.types import Conditioning

    n = kinema.NODE_CLASS_MAPPINGS
    dit, model = n["KinemaDiTLoader"]().load(dit_name, "default", "sdpa")
    text_dim = dit.model.config.text_dim
    g = torch.Generator().manual_seed(3)
    positive, negative = torch.randn(7, text_dim, generator=g), torch.randn(4, text_dim, generator=g)
    x = torch.randn(1, 16, 3, 6, 10, generator=g)  # [B, C, T, H, W] normalised latents
    padded = torch.zeros(1, 512, text_dim)  # native CLIPTextEncode's umT5 rows: zero tail to 512
    padded[0, :7] = positive
    import comfy.model_sampling as sampling

    ms = model.model.model_sampling
    result = {"model_class": type(model.model).__name__, "latent_format": type(model.model.latent_format).__name__,
              "flow_sampling": isinstance(ms, sampling.ModelSamplingDiscreteFlow) and isinstance(ms, sampling.CONST),
              "shift": float(ms.shift),
              "shift_after_node": float(comfy_nodes_extra("nodes_model_advanced").ModelSamplingSD3().patch(
                  model, 3.0)[0].get_model_object("model_sampling").shift)}

    # 1. Kinema's MODEL velocity == the Kinema DiT's
    kinema_v = dit.model(x, torch.full((1,), SIGMA * 1000), [positive])
    native_v = _velocity_of_model(model, x, padded)
    result["velocity_max_diff"] = _max_diff(native_v, kinema_v)
    result["velocity_std"] = float(kinema_v.std())
    # native Wan2.2's per-frame timesteps (a known first frame at 0) reach the DiT as per-token ones
    per_frame = torch.tensor([[0.0, SIGMA * 1000, SIGMA * 1000]])  # [B, frames]
    per_token = per_frame.repeat_interleave(3 * 5, dim=1)  # [B, frames * (6/2) * (10/2)]
    result["per_frame_t_max_diff"] = _max_diff(model.model.diffusion_model(x, per_frame, padded),
                                               dit.model(x, per_token, [positive]))

    # 2. native LoraLoaderModelOnly on the MODEL == KinemaLoRA on the DiT (and the DiT wire stays LoRA-free)
    lora_dit = n["KinemaLoRA"]().apply(dit, lora_name, LORA_STRENGTH, "merge")[0]
    lora_v = lora_dit.model(x, torch.full((1,), SIGMA * 1000), [positive])
    lora_model = comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(model, lora_name, LORA_STRENGTH)[0]
    result["lora_patched_keys"] = len(lora_model.patches)
    native_lora_v = _velocity_of_model(lora_model, x, padded)
    result["lora_max_diff"] = _max_diff(native_lora_v, lora_v)
    result["lora_effect"] = _max_diff(lora_v, kinema_v)
    result["plain_model_after_lora_max_diff"] = _max_diff(_velocity_of_model(model, x, padded), kinema_v)
    import comfy.model_management as mm

    _velocity_of_model(lora_model, x, padded)  # patched again, then ComfyUI unloads every model (/free)
    mm.unload_all_models()
    result["dit_after_eviction_max_diff"] = _max_diff(dit.model(x, torch.full((1,), SIGMA * 1000), [positive]),
                                                      kinema_v)
    result["lora_after_eviction_max_diff"] = _max_diff(_velocity_of_model(lora_model, x, padded), lora_v)
    # patched again, then a Kinema node takes the DiT
    from kinema_pack.nodes.native_model import as_dit
    result["dit_wire_after_lora_max_diff"] = _max_diff(
        as_dit(dit, "dit").model(x, torch.full((1,), SIGMA * 1000), [positive]), kinema_v)

    # ... and refused, naming the fix, where the DiT's weights are fp8 (native patches need dequantised weights)
    fp8_model = n["KinemaDiTLoader"]().load(fp8_name, "default", "sdpa")[1]
    fp8_lora = comfy_nodes.LoraLoaderModelOnly().load_lora_model_only(fp8_model, lora_name, LORA_STRENGTH)[0]
    try:
        _velocity_of_model(fp8_lora, x, padded)
        result["fp8_lora_error"] = None
    except ValueError as error:
        result["fp8_lora_error"] = str(error)

    # 3. native KSampler on Kinema's MODEL -> a LATENT that decodes to a video
    vae = n["KinemaVAELoader"]().load(vae_name, "default")[0]
    empty = {"samples": torch.zeros(1, 16, 3, 6, 10)}  # raw latents, as EmptyHunyuanLatentVideo makes
    conditioning = lambda rows: [[rows, {}]]  # noqa: E731
    negative_padded = torch.zeros(1, 512, text_dim)
    negative_padded[0, :4] = negative
    sampled = comfy_nodes.KSampler().sample(model, 5, 3, 2.0, "euler", "simple", conditioning(padded),
                                            conditioning(negative_padded), empty, denoise=1.0)[0]
    images = n["KinemaVAEDecode"]().decode(vae, sampled)[0]  # [frames, H, W, 3]
    result["ksampler_latent_std"] = float(sampled["samples"].std())
    result["ksampler_images"] = list(images.shape)
    result["ksampler_images_finite"] = bool(torch.isfinite(images).all())

    # EasyCache (a DIFFUSION_MODEL wrapper) and TorchCompileModel (an APPLY_MODEL wrapper) on Kinema's MODEL
    easy = comfy_nodes_extra("nodes_easycache").EasyCacheNode.execute(model, 0.3, 0.1, 1.0, False)[0]
    with _logged("skipped") as messages:
        eased = comfy_nodes.KSampler().sample(easy, 5, 10, 1.0, "euler", "simple", conditioning(padded),
                                              conditioning(negative_padded), empty, denoise=1.0)[0]
    skipped = [re.search(r"skipped (\d+)/(\d+) steps", m) for m in messages]
    result["easycache_skipped"] = [[int(m.group(1)), int(m.group(2))] for m in skipped if m]
    result["easycache_finite"] = bool(torch.isfinite(eased["samples"]).all())
    if os.environ.get("KINEMA_HEAVY") == "1":  # inductor on the CPU compiles for minutes
        result["compiled_max_diff"] = _compiled_vs_plain(model, conditioning(padded), conditioning(negative_padded),
                                                         empty)

    # 4. the sockets, as ComfyUI's validation links them: the loader's MODEL into KSampler, a MODEL into KinemaSampler
    from comfy_execution.validation import validate_node_input

    sampler_inputs = n["KinemaSampler"].INPUT_TYPES()
    ksampler_model = comfy_nodes.KSampler.INPUT_TYPES()["required"]["model"]
    result["sockets_link"] = [
        validate_node_input(n["KinemaDiTLoader"].RETURN_TYPES[1], ksampler_model[0]),
        validate_node_input("MODEL", sampler_inputs["required"]["dit"][0]),
        validate_node_input("MODEL", sampler_inputs["optional"]["dit_low_noise"][0]),
        validate_node_input(n["KinemaDiTLoader"].RETURN_TYPES[0], sampler_inputs["required"]["dit"][0])]

    # 5. KinemaSampler on a native UNETLoader MODEL == on KinemaDiTLoader, same file and seed; also windows + cache
    cond = Conditioning(positive, negative, "p", "n")
    native_unet = comfy_nodes.UNETLoader().load_unet(dit_name, "default")[0]
    result["unet_dtype"] = str(native_unet.model.get_dtype())
    latent = {"samples": torch.zeros(1, 16, 3, 6, 10)}
    ours = n["KinemaSampler"]().sample(dit, cond, latent, **_sampler_args(11))[0]["samples"]
    theirs = n["KinemaSampler"]().sample(native_unet, cond, latent, **_sampler_args(11))[0]["samples"]
    result["unet_sampler_max_diff"] = _max_diff(theirs, ours)
    result["unet_sampler_std"] = float(ours.std())
    long_video = n["KinemaLongVideoSettings"]().settings(5, 4, "linear", False, 0.0)[0]
    cache = n["KinemaStepCache"]().settings(0.05, 1, -1)[0]
    long_latent = {"samples": torch.zeros(1, 16, 4, 6, 10)}  # 4 latent frames in windows of 2, overlap 1
    extras = dict(long_video=long_video, step_cache=cache)
    ours = n["KinemaSampler"]().sample(dit, cond, long_latent, **_sampler_args(12), **extras)[0]["samples"]
    theirs = n["KinemaSampler"]().sample(native_unet, cond, long_latent, **_sampler_args(12), **extras)[0]["samples"]
    result["unet_long_video_max_diff"] = _max_diff(theirs, ours)
    return result


def main() -> None:
    pack_dir, models, *rest = sys.argv[1:]
    for folder in FOLDERS:
        folder_paths.add_model_folder_path(folder, str(Path(models) / folder), is_default=True)
    kinema = load_pack(pack_dir)
    with torch.no_grad():
        result = run(kinema, *rest)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
