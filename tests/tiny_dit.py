"""Tiny random Wan DiTs saved in every real file layout, for tests of anything that loads a DiT.

The reference model is diffusers' `WanTransformer3DModel` (an independent implementation).
Official-name files are made from it with `official_state_dict`, which is checked against
diffusers' own official->diffusers converter, so the official layout is certified by diffusers.

    model = make_tiny_diffusers_dit("t2v")
    path = save_tiny_dit(tmp_path, layout="comfy_prefixed", variant="t2v", model=model)
    dit = kinema.core.dit.load_dit(path)
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Optional, Union

import torch
from safetensors.torch import save_file

LAYOUTS = ("official", "comfy", "comfy_prefixed", "diffusers", "diffusers_sharded", "pth")
COMFY_PREFIX = "model.diffusion_model."
TEXT_DIM = 64
IMAGE_DIM = 64
FLF2V_IMAGE_TOKENS = 8  # two images x 4 CLIP tokens (the real model: 2 x 257)

# Channel counts of the real variants (section 1 of the Wan spec); widths are tiny.
VARIANTS = {
    "t2v": dict(in_channels=16, out_channels=16),  # Wan2.1 T2V, Wan2.2 T2V-A14B experts
    "i2v": dict(in_channels=36, out_channels=16),  # Wan2.2 I2V-A14B experts (no CLIP)
    "ti2v": dict(in_channels=48, out_channels=48),  # Wan2.2 TI2V-5B
    "i2v_clip": dict(in_channels=36, out_channels=16, image_dim=IMAGE_DIM),  # Wan2.1 I2V-14B
    "flf2v": dict(in_channels=36, out_channels=16, image_dim=IMAGE_DIM, pos_embed_seq_len=FLF2V_IMAGE_TOKENS),
    # Wan2.1 VACE: hints after main blocks 0 and 2 of 4 (the evenly spaced rule of config.py).
    "vace": dict(in_channels=16, out_channels=16, vace_layers=[0, 2], vace_in_channels=96),
    # Wan2.2 Animate with a shrunken motion encoder (16 px faces, 2 residual blocks instead of 512 px / 7)
    # and face adapters after blocks 0 and 2 of 4 (the release: every 5th of 40).
    "animate": dict(
        in_channels=36, latent_channels=16, out_channels=16, image_dim=IMAGE_DIM,
        motion_encoder_size=16, motion_encoder_channel_sizes={"16": 8, "8": 12, "4": 16},
        motion_style_dim=16, motion_dim=4, motion_encoder_dim=16,
        face_encoder_hidden_dim=8, face_encoder_num_heads=2, inject_face_latents_blocks=2,
    ),
}
FACE_SIZE = 16  # the tiny Animate model's face crop side
_BRANCH_LAYERS = 4  # VACE / Animate: enough main blocks to space their branches

Dtype = Union[torch.dtype, str]  # a torch float dtype, "fp8_e4m3fn" (plain cast) or "fp8_scaled" (ComfyUI)


def make_tiny_diffusers_dit(
    variant: str = "t2v", *, num_heads: int = 2, head_dim: int = 128, num_layers: Optional[int] = None, seed: int = 0,
    text_dim: int = TEXT_DIM,
):
    """A random fp32 diffusers WanTransformer3DModel (WanVACE.../WanAnimate... for those variants).
    Norm weights, biases, modulation tables and padding tokens are randomised too (diffusers
    initialises them to 1/0/small), so a swapped or missing tensor shows."""
    from diffusers import WanAnimateTransformer3DModel, WanTransformer3DModel, WanVACETransformer3DModel

    torch.manual_seed(seed)
    extra = dict(VARIANTS[variant])
    if "image_dim" in extra:
        extra["added_kv_proj_dim"] = num_heads * head_dim
    model_class = {"vace": WanVACETransformer3DModel, "animate": WanAnimateTransformer3DModel}.get(
        variant, WanTransformer3DModel)
    if num_layers is None:
        num_layers = _BRANCH_LAYERS if variant in ("vace", "animate") else 2
    model = model_class(
        patch_size=(1, 2, 2),
        num_attention_heads=num_heads,
        attention_head_dim=head_dim,
        text_dim=text_dim,
        freq_dim=256,
        ffn_dim=2 * num_heads * head_dim,
        num_layers=num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=1e-6,
        **extra,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn_like(p))
            elif "scale_shift_table" in name or "pos_embed" in name or "padding_tokens" in name:
                p.copy_(0.5 * torch.randn_like(p))
    return model.eval()


# diffusers name -> official name, as ordered substring replacements (inverse of diffusers' converter).
_TO_OFFICIAL = (
    ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
    ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
    ("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
    ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
    ("condition_embedder.time_proj.", "time_projection.1."),
    ("condition_embedder.image_embedder.norm1.", "img_emb.proj.0."),
    ("condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."),
    ("condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."),
    ("condition_embedder.image_embedder.norm2.", "img_emb.proj.4."),
    ("condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"),
    (".attn1.to_out.0.", ".self_attn.o."),
    (".attn2.to_out.0.", ".cross_attn.o."),
    (".attn2.add_k_proj.", ".cross_attn.k_img."),
    (".attn2.add_v_proj.", ".cross_attn.v_img."),
    (".attn2.norm_added_k.", ".cross_attn.norm_k_img."),
    (".attn1.to_", ".self_attn."),
    (".attn2.to_", ".cross_attn."),
    (".attn1.", ".self_attn."),
    (".attn2.", ".cross_attn."),
    (".ffn.net.0.proj.", ".ffn.0."),
    (".ffn.net.2.", ".ffn.2."),
    (".norm2.", ".norm3."),
    (".scale_shift_table", ".modulation"),
    # VACE
    (".proj_in.", ".before_proj."),
    (".proj_out.", ".after_proj."),  # inside vace_blocks only; the head's proj_out is handled first
    # Animate (the motion encoder's renumbering and the face adapter's k/v packing: _official_animate)
    ("motion_encoder.motion_synthesis_weight", "motion_encoder.dec.direction.weight"),
    ("motion_encoder.motion_network.", "motion_encoder.enc.fc."),
    ("face_encoder.conv1_local.", "face_encoder.conv1_local.conv."),
    ("face_encoder.conv2.", "face_encoder.conv2.conv."),
    ("face_encoder.conv3.", "face_encoder.conv3.conv."),
)
_MOTION_CONVS = "motion_encoder.enc.net_app.convs"
_RES_BLOCK_PARTS = {"conv1.weight": "conv1.0.weight", "conv1.act_fn.bias": "conv1.1.bias",
                    "conv2.weight": "conv2.1.weight", "conv2.act_fn.bias": "conv2.2.bias",
                    "conv_skip.weight": "skip.1.weight"}


def _official_name(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("proj_out."):
        return "head.head." + key[len("proj_out."):]
    for old, new in _TO_OFFICIAL:
        key = key.replace(old, new)
    return key


def _official_animate(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Animate's diffusers-only names -> official: residual blocks numbered from 1, the final conv
    after them, activation biases [1, C, 1, 1], face adapter k and v packed into linear1_kv."""
    out: dict[str, torch.Tensor] = {}
    res_blocks = {int(k.split(".")[2]) for k in tensors if k.startswith("motion_encoder.res_blocks.")}
    for key, value in tensors.items():
        parts = key.split(".")
        if key == "motion_encoder.conv_in.weight":
            out[f"{_MOTION_CONVS}.0.0.weight"] = value
        elif key == "motion_encoder.conv_in.act_fn.bias":
            out[f"{_MOTION_CONVS}.0.1.bias"] = value.reshape(1, -1, 1, 1)
        elif key.startswith("motion_encoder.res_blocks."):
            part = _RES_BLOCK_PARTS[".".join(parts[3:])]
            out[f"{_MOTION_CONVS}.{int(parts[2]) + 1}.{part}"] = value.reshape(1, -1, 1, 1) if part.endswith(
                "bias") else value
        elif key == "motion_encoder.conv_out.weight":
            out[f"{_MOTION_CONVS}.{len(res_blocks) + 1}.weight"] = value
        elif key.startswith("face_adapter.") and parts[2] in ("to_k", "to_v"):
            if parts[2] == "to_k":
                out[f"face_adapter.fuser_blocks.{parts[1]}.linear1_kv.{parts[3]}"] = torch.cat(
                    [value, tensors[key.replace(".to_k.", ".to_v.")]])
        elif key.startswith("face_adapter."):
            name = {"to_q": "linear1_q", "to_out": "linear2", "norm_q": "q_norm", "norm_k": "k_norm"}[parts[2]]
            out[f"face_adapter.fuser_blocks.{parts[1]}.{name}.{parts[3]}"] = value
        else:
            out[_official_name(key)] = value
    return out


def _blur_buffers(official: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The blur filters official Animate files also store (buffers of every down-sampling conv)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(taps, taps) / 64
    return {k.replace(".conv2.1.weight", f".{branch}.0.kernel"): kernel.clone()
            for k in official if k.endswith(".conv2.1.weight") for branch in ("conv2", "skip")}


def official_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's weights under official Wan names, verified by diffusers' own converter."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    ours = {k: v.detach().clone() for k, v in model.state_dict().items()}
    official = _official_animate(ours)
    back = convert_wan_transformer_to_diffusers(dict(official))
    # diffusers' single-file converter (0.42) has no rule for FLF2V's position table: it passes
    # `img_emb.emb_pos` through unrenamed. Likewise its motion encoder rules are written for the
    # released 512 px encoder (final conv = convs.8); a tiny encoder's final conv passes unrenamed.
    if "img_emb.emb_pos" in back:
        back["condition_embedder.image_embedder.pos_embed"] = back.pop("img_emb.emb_pos")
    final_conv = [k for k in back if k.startswith(_MOTION_CONVS)]
    if final_conv:
        assert len(final_conv) == 1, final_conv
        back["motion_encoder.conv_out.weight"] = back.pop(final_conv[0])
    # Every other name must round-trip exactly, to the same values.
    assert back.keys() == ours.keys(), sorted(set(back) ^ set(ours))[:5]
    assert all(torch.equal(back[k], ours[k]) for k in ours)
    return {**official, **_blur_buffers(official)}


def official_config(model) -> dict:
    c = model.config
    extra = {}
    if "vace_layers" in c:
        extra = {"model_type": "vace", "vace_layers": list(c.vace_layers), "vace_in_dim": c.vace_in_channels}
    elif "motion_encoder_dim" in c:
        extra = {"_class_name": "WanAnimateModel", "model_type": "animate", "motion_encoder_dim": c.motion_encoder_dim}
    return {
        "_class_name": "WanModel",
        "model_type": "i2v" if c.image_dim else ("ti2v" if c.out_channels == 48 else "t2v"),
        "dim": c.num_attention_heads * c.attention_head_dim,
        "eps": c.eps,
        "ffn_dim": c.ffn_dim,
        "freq_dim": c.freq_dim,
        "in_dim": c.in_channels,
        "num_heads": c.num_attention_heads,
        "num_layers": c.num_layers,
        "out_dim": c.out_channels,
        "text_len": 512,
        **extra,
    }


def quantise_fp8(tensors: dict[str, torch.Tensor], scaled: bool, scale_key: str = "scale_weight") -> dict:
    """ComfyUI-style fp8: every Linear weight (the 2-D `.weight`s) in float8_e4m3fn, the rest bf16.
    Scaled: per-tensor scale = max|W| / 448 (e4m3's largest normal) stored as `<layer>.<scale_key>`."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if key.endswith(".weight") and value.ndim == 2:
            if scaled:
                scale = value.abs().max().float() / 448.0
                out[key] = (value / scale).to(torch.float8_e4m3fn)
                out[key[: -len("weight")] + scale_key] = scale.reshape(())
            else:
                out[key] = value.to(torch.float8_e4m3fn)
        else:
            out[key] = value.to(torch.bfloat16)
    if scaled:
        out["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)  # ComfyUI's marker (dtype = format)
    return out


def save_tiny_dit(
    directory: Union[str, Path],
    layout: str = "official",
    variant: str = "t2v",
    dtype: Dtype = torch.float32,
    *,
    model=None,
    scale_key: str = "scale_weight",
    write_config: bool = True,
) -> Path:
    """Write a tiny DiT in `layout` under `directory`; returns the path to give a loader.

    official: `diffusion_pytorch_model.safetensors` (+ official config.json); comfy / comfy_prefixed:
    one ComfyUI-style file (fp8 dtypes allowed); diffusers: a transformer folder (save_pretrained);
    diffusers_sharded: a pipeline folder whose `transformer/` holds shards + index json; pth: an
    official-names `.pth` (+ config.json).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else make_tiny_diffusers_dit(variant)
    is_fp8 = dtype in ("fp8_e4m3fn", "fp8_scaled")
    if is_fp8 and not layout.startswith("comfy"):
        raise ValueError(f"fp8 files exist only in the ComfyUI layouts, not {layout!r}")
    if layout in ("diffusers", "diffusers_sharded"):
        folder = directory / "transformer" if layout == "diffusers_sharded" else directory
        shard = "40KB" if layout == "diffusers_sharded" else "10GB"
        stored = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
        stored.save_pretrained(folder, max_shard_size=shard, safe_serialization=True)
        return directory
    tensors = official_state_dict(model)
    tensors = quantise_fp8(tensors, dtype == "fp8_scaled", scale_key) if is_fp8 else {
        k: v.to(dtype).contiguous() for k, v in tensors.items()
    }
    if layout == "comfy_prefixed":
        tensors = {COMFY_PREFIX + k: v for k, v in tensors.items()}
    if layout in ("official", "pth") and write_config:
        (directory / "config.json").write_text(json.dumps(official_config(model), indent=2))
    if layout == "pth":
        path = directory / "wan_dit.pth"
        torch.save(tensors, path)
        return path
    if layout not in ("official", "comfy", "comfy_prefixed"):
        raise ValueError(f"unknown layout {layout!r}; known: {LAYOUTS}")
    name = "diffusion_pytorch_model.safetensors" if layout == "official" else f"tiny_wan_{variant}.safetensors"
    path = directory / name
    save_file(tensors, str(path))
    return path


def tiny_inputs(model, *, batch: int = 1, frames: int = 3, height: int = 6, width: int = 10, seed: int = 1,
                per_token_t: bool = False, image_tokens: Optional[int] = None) -> dict:
    """Random inputs for `model` in OUR call convention (x, t, context list, y, clip_fea, and the
    VACE / Animate branch inputs), so `dit(**inputs)` runs it."""
    g = torch.Generator().manual_seed(seed)
    c = model.config
    cond = c.in_channels - c.out_channels
    x = torch.randn(batch, c.out_channels, frames, height, width, generator=g)
    y = torch.randn(batch, cond, frames, height, width, generator=g) if cond else None
    context = [torch.randn(n, TEXT_DIM, generator=g) for n in (17, 9, 30, 5)[:batch]]
    t = torch.tensor([937.5, 401.0, 12.25, 640.0][:batch])
    if per_token_t:  # TI2V image-to-video: tokens of latent frame 0 (the given image) get t = 0
        tokens_per_frame = (height // 2) * (width // 2)
        t = t[:, None].repeat(1, frames * tokens_per_frame)
        t[:, :tokens_per_frame] = 0.0
    clip_fea = None
    if c.image_dim:
        n = c.pos_embed_seq_len or image_tokens or 5
        clip_fea = torch.randn(batch, n, c.image_dim, generator=g)
    branch = {}
    if "vace_layers" in c:
        branch["vace_context"] = torch.randn(batch, c.vace_in_channels, frames, height, width, generator=g)
    if "motion_encoder_dim" in c:  # frame 0 is the reference slot: pose and faces cover the other frames
        branch["pose_latents"] = torch.randn(batch, c.latent_channels, frames - 1, height, width, generator=g)
        face_frames = 4 * (frames - 2) + 1
        branch["face_pixels"] = torch.rand(batch, 3, face_frames, FACE_SIZE, FACE_SIZE, generator=g) * 2 - 1
    return dict(x=x, t=t, context=context, y=y, clip_fea=clip_fea, **branch)


def reference_forward(model, inputs: dict) -> torch.Tensor:
    """diffusers' output for OUR inputs (text zero-padded to 512 rows, y concatenated, FLF2V's
    two images as diffusers wants them)."""
    x = inputs["x"] if inputs["y"] is None else torch.cat([inputs["x"], inputs["y"]], dim=1)
    text = torch.zeros(len(inputs["context"]), 512, TEXT_DIM)
    for i, row in enumerate(inputs["context"]):
        text[i, : row.shape[0]] = row
    image = inputs["clip_fea"]
    if image is not None and model.config.pos_embed_seq_len:
        image = image.reshape(-1, image.shape[1] // 2, image.shape[2])  # [2B, N/2, d]
    renames = {"vace_context": "control_hidden_states", "vace_strength": "control_hidden_states_scale",
               "pose_latents": "pose_hidden_states", "face_pixels": "face_pixel_values"}
    branch = {new: torch.as_tensor(inputs[old]) for old, new in renames.items() if old in inputs}
    with torch.no_grad():
        return model(x, inputs["t"], text, encoder_hidden_states_image=image, return_dict=False, **branch)[0]


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    """max |out - ref| / max |ref|: the parity measure every DiT test states its bound in."""
    assert out.dtype == torch.float32, f"the DiT returns float32 velocities, got {out.dtype}"
    assert out.shape == ref.shape, (out.shape, ref.shape)
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max()).item()
