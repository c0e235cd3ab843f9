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
}

Dtype = Union[torch.dtype, str]  # a torch float dtype, "fp8_e4m3fn" (plain cast) or "fp8_scaled" (ComfyUI)


def make_tiny_diffusers_dit(
    variant: str = "t2v", *, num_heads: int = 2, head_dim: int = 128, num_layers: int = 2, seed: int = 0
):
    """A random fp32 diffusers WanTransformer3DModel. Norm weights, biases and modulation tables are
    randomised too (diffusers initialises them to 1/0/small), so a swapped or missing tensor shows."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(seed)
    extra = dict(VARIANTS[variant])
    if "image_dim" in extra:
        extra["added_kv_proj_dim"] = num_heads * head_dim
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=num_heads,
        attention_head_dim=head_dim,
        text_dim=TEXT_DIM,
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
            elif "scale_shift_table" in name or "pos_embed" in name:
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
)


def _official_name(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("proj_out."):
        return "head.head." + key[len("proj_out."):]
    for old, new in _TO_OFFICIAL:
        key = key.replace(old, new)
    return key


def official_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's weights under official Wan names, verified by diffusers' own converter."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    ours = {k: v.detach().clone() for k, v in model.state_dict().items()}
    official = {_official_name(k): v for k, v in ours.items()}
    back = convert_wan_transformer_to_diffusers(dict(official))
    # diffusers' single-file converter (0.42) has no rule for FLF2V's position table: it passes
    # `img_emb.emb_pos` through unrenamed. Every other name must round-trip exactly.
    if "img_emb.emb_pos" in back:
        back["condition_embedder.image_embedder.pos_embed"] = back.pop("img_emb.emb_pos")
    assert back.keys() == ours.keys(), sorted(set(back) ^ set(ours))[:5]
    assert all(back[k] is official[_official_name(k)] for k in ours)
    return official


def official_config(model) -> dict:
    c = model.config
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
    """Random inputs for `model` in OUR call convention (x, t, context list, y, clip_fea)."""
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
    return dict(x=x, t=t, context=context, y=y, clip_fea=clip_fea)


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
    with torch.no_grad():
        return model(x, inputs["t"], text, encoder_hidden_states_image=image, return_dict=False)[0]
