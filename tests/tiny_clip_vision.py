"""Tiny random CLIP vision towers saved in each real file layout, for tests of anything that loads one.

The reference is transformers' CLIPVisionModelWithProjection (an independent implementation). The
official Wan and open_clip names are produced here by their own small tables, written from Wan's
`wan/modules/clip.py` and open_clip's `VisionTransformer`, not from Kinema's mapping, so a wrong rule
in `core/clip_vision/layouts.py` cannot cancel itself out.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

LAYOUTS = ("comfy", "transformers", "official", "open_clip")
IMAGE_SIZE = 28  # 2 x 2 patches of 14 px + the class token = 5 tokens (ViT-H/14: 16 x 16 + 1 = 257)


def make_tiny_clip_vision(width: int = 128, layers: int = 3, heads: int = 2, seed: int = 0,
                          image_size: int = IMAGE_SIZE, patch: int = 14):
    """A random fp32 CLIPVisionModelWithProjection with ViT-H's structure (exact GELU, eps 1e-5, no patch bias);
    heads are 64 wide as in every open-clip ViT. Norms and biases are randomised so a swapped tensor shows."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                              num_attention_heads=heads, image_size=image_size, patch_size=patch, projection_dim=32,
                              hidden_act="gelu", layer_norm_eps=1e-5, attn_implementation="eager")
    model = CLIPVisionModelWithProjection(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias") or "embedding" in name:
                p.copy_(0.3 * torch.randn_like(p))
    return model.eval()


def reference_features(model, pixels: torch.Tensor) -> torch.Tensor:
    """transformers' penultimate hidden states (what Wan's 31-of-32-blocks output is) for normalised pixels."""
    with torch.no_grad():
        return model(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]


def _hf(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _layers(tensors: dict) -> int:
    return len({k.split(".")[3] for k in tensors if k.startswith("vision_model.encoder.layers.")})


def official_state_dict(model) -> dict[str, torch.Tensor]:
    """Wan's `XLMRobertaCLIP` names: `visual.*` (fused to_qkv, mlp.0/mlp.2, head [D, out]) and a text tower."""
    hf = _hf(model)
    v = "vision_model."
    out = {
        "visual.patch_embedding.weight": hf[v + "embeddings.patch_embedding.weight"],
        "visual.cls_embedding": hf[v + "embeddings.class_embedding"].reshape(1, 1, -1),
        "visual.pos_embedding": hf[v + "embeddings.position_embedding.weight"][None],
        "visual.pre_norm.weight": hf[v + "pre_layrnorm.weight"], "visual.pre_norm.bias": hf[v + "pre_layrnorm.bias"],
        "visual.post_norm.weight": hf[v + "post_layernorm.weight"],
        "visual.post_norm.bias": hf[v + "post_layernorm.bias"],
        "visual.head": hf["visual_projection.weight"].t().contiguous(),
        "textual.token_embedding.weight": torch.zeros(10, 8), "log_scale": torch.tensor(2.6),
    }
    for i in range(_layers(hf)):
        src, dst = f"{v}encoder.layers.{i}.", f"visual.transformer.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.to_qkv.{kind}"] = torch.cat([hf[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            for old, new in (("self_attn.out_proj", "attn.proj"), ("layer_norm1", "norm1"), ("layer_norm2", "norm2"),
                             ("mlp.fc1", "mlp.0"), ("mlp.fc2", "mlp.2")):
                out[dst + f"{new}.{kind}"] = hf[src + f"{old}.{kind}"]
    return out


def open_clip_state_dict(model) -> dict[str, torch.Tensor]:
    """open_clip's names (`visual.conv1`, `class_embedding` [D], `transformer.resblocks.N.attn.in_proj_weight`,
    `proj` [D, out]) and a few text-tower keys a full open_clip checkpoint carries."""
    hf = _hf(model)
    v = "vision_model."
    out = {
        "visual.conv1.weight": hf[v + "embeddings.patch_embedding.weight"],
        "visual.class_embedding": hf[v + "embeddings.class_embedding"],
        "visual.positional_embedding": hf[v + "embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": hf[v + "pre_layrnorm.weight"], "visual.ln_pre.bias": hf[v + "pre_layrnorm.bias"],
        "visual.ln_post.weight": hf[v + "post_layernorm.weight"], "visual.ln_post.bias": hf[v + "post_layernorm.bias"],
        "visual.proj": hf["visual_projection.weight"].t().contiguous(),
        "token_embedding.weight": torch.zeros(10, 8), "positional_embedding": torch.zeros(7, 8),
        "transformer.resblocks.0.ln_1.weight": torch.ones(8), "logit_scale": torch.tensor(4.6),
    }
    for i in range(_layers(hf)):
        src, dst = f"{v}encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat([hf[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            for old, new in (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                             ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                out[dst + f"{new}.{kind}"] = hf[src + f"{old}.{kind}"]
    return out


def save_tiny_clip_vision(directory, layout: str = "comfy", model=None, dtype: torch.dtype = torch.float32) -> Path:
    """Write a tiny CLIP vision tower in `layout` under `directory`; returns the path to give a loader.

    comfy: one `clip_vision_h.safetensors` (CLIPVisionModelWithProjection keys); transformers: a
    save_pretrained folder of CLIPVisionModel (no projection); official / open_clip: a `.pth`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = model if model is not None else make_tiny_clip_vision()
    if layout == "transformers":
        from transformers import CLIPVisionModel

        plain = CLIPVisionModel(model.config)
        getattr(plain, "vision_model", plain).load_state_dict(model.vision_model.state_dict())  # transformers 5: no wrapper
        plain.to(dtype).save_pretrained(directory / "image_encoder", safe_serialization=True)
        return directory / "image_encoder"
    if layout == "comfy":
        path = directory / "clip_vision_h.safetensors"
        save_file({k: v.to(dtype).contiguous() for k, v in _hf(model).items()}, str(path))
        return path
    tensors = {"official": official_state_dict, "open_clip": open_clip_state_dict}[layout](model)
    path = directory / f"tiny_clip_{layout}.pth"
    torch.save({k: v.to(dtype) for k, v in tensors.items()}, path)
    return path
