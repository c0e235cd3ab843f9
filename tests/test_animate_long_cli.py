"""Long Wan-Animate through `kinema run`: the animate_a_photo graph with KinemaLongVideoSettings wired to the
sampler chains clips over the whole driving video. On the tiny random models the sampler's latents equal
clips run by hand with the official rule written out below from wan/animate.py (ping-pong padding,
get_valid_len, get_i2v_mask, the previous clip's last `refert_num` decoded frames as known frames, the
overlap dropped), each clip sampled on its own with seed + k."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from kinema.cli import main as cli_main
from kinema.cli.run import run_graph
from kinema.core.sampling import BranchConditioning, SamplerSettings, SamplingRequest, run_sampling
from kinema.core.video import VideoWriter, read_frames
from kinema.nodes import host
from tiny_model_folders import model_root  # noqa: F401  (fixture)

SIZE = 16  # pixels: one 2x2 latent, one token per frame; the tiny model's face crops are 16x16 too
CLIP_TOKENS = 257


# --- the official rule, written out from wan/animate.py ------------------------------------------------------

def official_padding(count: int, target_len: int) -> list[int]:
    """inputs_padding over frame indices."""
    idx, flip, order = 0, False, []
    while len(order) < target_len:
        order.append(idx)
        idx = idx - 1 if flip else idx + 1
        if idx == 0 or idx == count - 1:
            flip = not flip
    return order


def official_valid_len(real_len: int, clip_len: int, overlap: int) -> int:
    real_clip_len = clip_len - overlap
    last_clip_num = (real_len - overlap) % real_clip_len
    return real_len + (0 if last_clip_num == 0 else real_clip_len - last_clip_num)


def official_i2v_mask(lat_t: int, lat_h: int, lat_w: int, mask_len: int, mask_pixel_values=None) -> torch.Tensor:
    msk = torch.zeros(1, (lat_t - 1) * 4 + 1, lat_h, lat_w) if mask_pixel_values is None else mask_pixel_values.clone()
    msk[:, :mask_len] = 1
    msk = torch.concat([torch.repeat_interleave(msk[:, 0:1], repeats=4, dim=1), msk[:, 1:]], dim=1)
    msk = msk.view(1, msk.shape[1] // 4, 4, lat_h, lat_w)
    return msk.transpose(1, 2)[0]


def official_chain(dit, vae, positive, negative, settings, reference, images, clip_len, refert_num, clip_fea):
    """(latents of every clip, the finished video [1, 3, F, H, W]) by the official loop; `images` [F, H, W, 3]."""
    real_len = images.shape[0]
    target_len = official_valid_len(real_len, clip_len, refert_num)
    frames = official_padding(real_len, target_len)
    start, end, k, clips, outputs = 0, clip_len, 0, [], []
    height, width = reference.shape[-2:]
    lat_h, lat_w, lat_t = height // 8, width // 8, clip_len // 4 + 1
    while start + refert_num < target_len:
        mask_reft_len = 0 if start == 0 else refert_num
        driving = images[frames[start:end]].permute(3, 0, 1, 2)[None] * 2 - 1  # [1, 3, T, H, W]
        y_ref = torch.concat([official_i2v_mask(1, lat_h, lat_w, 1), vae.encode(reference[:, :, None])[0]])
        known = torch.zeros(3, clip_len - mask_reft_len, height, width)
        if mask_reft_len:
            known = torch.concat([out_frames[0, :, -refert_num:], known], dim=1)  # noqa: F821 (previous clip)
        y_reft = torch.concat([official_i2v_mask(lat_t, lat_h, lat_w, mask_reft_len), vae.encode(known[None])[0]])
        y = torch.concat([y_ref, y_reft], dim=1)[None]
        inputs = {"y": y, "pose_latents": vae.encode(driving), "face_pixels": driving, "clip_fea": clip_fea}
        branch = BranchConditioning("animate", inputs, (1, 16, y.shape[2], lat_h, lat_w), 1)
        clip_settings = SamplerSettings(**{**settings.__dict__, "seed": settings.seed + k})
        latents = run_sampling(SamplingRequest(dit=dit, positive=positive, negative=negative, settings=clip_settings,
                                               branch=branch))
        clips.append(latents)
        out_frames = vae.decode(latents)
        outputs.append(out_frames if start == 0 else out_frames[:, :, refert_num:])
        start, end, k = start + clip_len - refert_num, end + clip_len - refert_num, k + 1
    return clips, torch.cat(outputs, dim=2)[:, :, :real_len]


# --- the graph ----------------------------------------------------------------------------------------------

def write_inputs(folder, frames: int, seed: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(folder / "character.png")
    t = np.linspace(0, 1, frames)[:, None, None, None]
    base = rng.integers(0, 256, (2, SIZE, SIZE, 3)).astype(np.float64)
    video = ((1 - t) * base[0] + t * base[1]).astype(np.uint8)  # a slow cross-fade: moving content, every frame
    with VideoWriter(folder / "driving.mp4", 30) as writer:
        writer.write(torch.from_numpy(video))


def node(class_type: str, **inputs) -> dict:
    """An API-format node: the given inputs, every other required widget at its default."""
    from kinema.nodes import NODE_CLASS_MAPPINGS

    for name, entry in NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()["required"].items():
        kind, options = entry[0], entry[1] if len(entry) > 1 else {}
        if name not in inputs and "default" in options:
            inputs[name] = options["default"]
        elif name not in inputs and isinstance(kind, list):
            inputs[name] = kind[0]
    return {"class_type": class_type, "inputs": inputs}


def long_animate_graph(clip_len: int, refert_num: int, cfg: float = 2.0, steps: int = 2, size: int = SIZE) -> dict:
    """Photo + driving video -> Animate conditioning (the driving frames as pose and face video: the pose nodes
    are tested elsewhere) -> sampler with KinemaLongVideoSettings -> mp4, at tiny sizes."""
    return {
        "1": node("KinemaDiTLoader", model_name="wan2.2_animate_14B_bf16.safetensors"),
        "2": node("KinemaVAELoader", vae_name="wan_2.1_vae.safetensors"),
        "3": node("KinemaTextEncoderLoader", text_encoder_name="umt5_xxl_fp8_e4m3fn_scaled.safetensors"),
        "4": node("KinemaTextEncode", text_encoder=["3", 0], prompt="a person dances"),
        "5": node("KinemaLoadImage", image="character.png"),
        "6": node("KinemaLoadVideo", video="driving.mp4", max_frames=0),
        "12": node("KinemaAnimateConditioning", dit=["1", 0], vae=["2", 0], reference_image=["5", 0],
                   pose_video=["6", 0], face_video=["6", 0], width=size, height=size, frames=clip_len),
        "13": node("KinemaEmptyLatent", vae=["2", 0], width=size, height=size, frames=clip_len),
        "14": node("KinemaSampler", dit=["1", 0], conditioning=["4", 0], latent=["13", 0], seed=42, steps=steps,
                   cfg=cfg, branch=["12", 0], long_video=["16", 0]),
        "15": node("KinemaDecodeToVideo", vae=["2", 0], samples=["14", 0], fps=30, filename_prefix="kinema/long"),
        "16": node("KinemaLongVideoSettings", animate_overlap_frames=refert_num),
    }


@pytest.mark.parametrize("clip_len, refert_num, frames", [(5, 1, 11), (9, 5, 15)])
def test_three_clips_through_kinema_run_equal_the_official_loop(model_root, tmp_path, clip_len, refert_num, frames):
    write_inputs(tmp_path / "input", frames)
    graph = long_animate_graph(clip_len, refert_num)
    host.configure(models=[model_root], output=tmp_path / "output", input_dir=tmp_path / "input")
    try:
        result = run_graph(graph)
    finally:
        host.configure()
    out = result.outputs
    dit, vae, text = out["1"][0].model, out["2"][0].model, out["4"][0]
    images, reference = out["6"][0], out["5"][0].permute(0, 3, 1, 2) * 2 - 1
    assert official_valid_len(frames, clip_len, refert_num) == 3 * (clip_len - refert_num) + refert_num  # 3 clips
    settings = SamplerSettings(steps=2, cfg=2.0, shift=5.0, solver="unipc", seed=42)
    clip_fea = torch.zeros(1, CLIP_TOKENS, dit.config.image_dim)  # the node's default without CLIP vision
    with torch.no_grad():
        clips, video = official_chain(dit, vae, [text.positive], [text.negative], settings, reference, images,
                                      clip_len, refert_num, clip_fea)
    assert len(clips) == 3
    samples = out["14"][0]
    assert torch.equal(samples["samples"], _on_the_socket(torch.cat(clips, dim=2)))
    chain = samples["kinema_clips"]
    decoded = chain.decode_to_images(vae, torch.cat(clips, dim=2))  # [F, H, W, 3]
    torch.testing.assert_close(decoded, (video[0].permute(1, 2, 3, 0) + 1) / 2, rtol=0, atol=1e-6)
    written = read_frames(result.saved_files()[0])
    assert written.frames.shape == (frames, SIZE, SIZE, 3)  # the whole driving video, overlaps dropped


def _on_the_socket(latents: torch.Tensor) -> torch.Tensor:
    """The DiT's latents as the sampler puts them on the LATENT socket (raw VAE latents, nodes.latent_space)."""
    try:
        from kinema.nodes.latent_space import model_to_raw
    except ImportError:  # a socket that holds the DiT's latents as they are
        return latents
    return model_to_raw(latents, "test")


def test_kinema_run_command_writes_the_long_animation(model_root, tmp_path):
    """The same graph through the command line: one mp4 as long as the driving video."""
    write_inputs(tmp_path / "input", 11)
    workflow = tmp_path / "long_animate_api.json"
    workflow.write_text(json.dumps(long_animate_graph(5, 1, cfg=1.0, steps=1)))
    code = cli_main(["run", str(workflow), "--models", str(model_root), "--input", str(tmp_path / "input"),
                     "--output", str(tmp_path / "output")])
    host.configure()
    assert code == 0
    (path,) = (tmp_path / "output").rglob("*.mp4")
    assert read_frames(path).frames.shape[0] == 11
