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


# One table per file family, written from its own source (Wan's `wan/modules/clip.py`, open_clip's
# `VisionTransformer`): transformers' name -> theirs; "qkv" is their fused q/k/v projection (weight, bias).
_NAMES = {
    "official": dict(
        top={"embeddings.patch_embedding.weight": "visual.patch_embedding.weight",
             "embeddings.class_embedding": "visual.cls_embedding", "embeddings.position_embedding.weight":
             "visual.pos_embedding", "pre_layrnorm": "visual.pre_norm", "post_layernorm": "visual.post_norm"},
        head="visual.head", block="visual.transformer.{}.", qkv="attn.to_qkv.{}",
        parts={"self_attn.out_proj": "attn.proj", "layer_norm1": "norm1", "layer_norm2": "norm2",
               "mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"},
        extra={"textual.token_embedding.weight": torch.zeros(10, 8), "log_scale": torch.tensor(2.6)}),
    "open_clip": dict(
        top={"embeddings.patch_embedding.weight": "visual.conv1.weight",
             "embeddings.class_embedding": "visual.class_embedding", "embeddings.position_embedding.weight":
             "visual.positional_embedding", "pre_layrnorm": "visual.ln_pre", "post_layernorm": "visual.ln_post"},
        head="visual.proj", block="visual.transformer.resblocks.{}.", qkv="attn.in_proj_{}",
        parts={"self_attn.out_proj": "attn.out_proj", "layer_norm1": "ln_1", "layer_norm2": "ln_2",
               "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"},
        extra={"token_embedding.weight": torch.zeros(10, 8), "positional_embedding": torch.zeros(7, 8),
               "transformer.resblocks.0.ln_1.weight": torch.ones(8), "logit_scale": torch.tensor(4.6)}),
}


def renamed_state_dict(model, family: str) -> dict[str, torch.Tensor]:
    """The tower under Wan's official names (`visual.*`: fused to_qkv, class token [1, 1, D], positions
    [1, T, D], head [D, out], plus a text tower) or open_clip's (`visual.conv1`, class token [D], positions
    [T, D], `in_proj_weight`, `proj` [D, out], plus text-tower keys)."""
    names, hf, v = _NAMES[family], _hf(model), "vision_model."
    out = dict(names["extra"])
    for old, new in names["top"].items():
        for suffix in (".weight", ".bias") if old.endswith("norm") else ("",):
            out[new + suffix] = hf[v + old + suffix]
    out[names["head"]] = hf["visual_projection.weight"].t().contiguous()
    if family == "official":  # Wan keeps batch axes on the class token and the position table
        out["visual.cls_embedding"] = out["visual.cls_embedding"].reshape(1, 1, -1)
        out["visual.pos_embedding"] = out["visual.pos_embedding"][None]
    for i in range(_layers(hf)):
        src, dst = f"{v}encoder.layers.{i}.", names["block"].format(i)
        for kind in ("weight", "bias"):
            out[dst + names["qkv"].format(kind)] = torch.cat([hf[src + f"self_attn.{p}_proj.{kind}"] for p in "qkv"])
            for old, new in names["parts"].items():
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
    tensors = renamed_state_dict(model, layout)
    path = directory / f"tiny_clip_{layout}.pth"
    torch.save({k: v.to(dtype) for k, v in tensors.items()}, path)
    return path
