"""Which layout a VAE checkpoint is in, and renaming it to the official Wan key names.

Official `.pth` files and ComfyUI's repackaged `.safetensors` already use the official names.
diffusers (`AutoencoderKLWan`) renames blocks and nests the decoder stages; each of its keys is
rewritten by one of the anchored rules below, and a key no rule explains is an error.
"""
from __future__ import annotations

import re

import torch

from ..checkpoints.io import CheckpointError

OFFICIAL = "official"
DIFFUSERS = "diffusers"

# Keys that only the other Wan checkpoints have, to say what a wrong file is.
_NOT_A_VAE = (
    (re.compile(r"(^|\.)(blocks\.\d+\.(self_attn|cross_attn)|patch_embedding|time_embedding)\."),
     "a Wan diffusion model (DiT) checkpoint; load it with the DiT loader (ComfyUI: models/diffusion_models)"),
    (re.compile(r"(^|\.)(shared\.weight|encoder\.block\.\d+|blocks\.\d+\.attn\.|token_embedding)"),
     "a text encoder (umT5) checkpoint; load it with the text encoder loader (ComfyUI: models/text_encoders)"),
    (re.compile(r"^(visual\.|model\.visual\.|log_scale)"), "a CLIP vision checkpoint"),
)

_RESNET_PARTS = {"norm1.gamma": "residual.0.gamma", "norm2.gamma": "residual.3.gamma"}
_RESNET_CONVS = {"conv1": "residual.2", "conv2": "residual.6", "conv_shortcut": "shortcut"}


def detect_layout(tensors: dict[str, torch.Tensor], source: str) -> str:
    keys = tensors.keys()
    if "decoder.middle.0.residual.0.gamma" in keys:
        return OFFICIAL
    if "decoder.mid_block.resnets.0.norm1.gamma" in keys:
        return DIFFUSERS
    for pattern, what in _NOT_A_VAE:
        if any(pattern.search(k) for k in keys):
            raise CheckpointError(f"{source}: this is {what}, not a Wan VAE. Pick the VAE file "
                                  f"(Wan2.1_VAE.pth / wan_2.1_vae.safetensors or Wan2.2_VAE.pth / wan2.2_vae.safetensors)")
    sample = sorted(keys)[:5]
    raise CheckpointError(f"{source}: not a Wan VAE checkpoint (no official or diffusers VAE keys; first keys: "
                          f"{sample}). Expected Wan2.1_VAE.pth, wan_2.1_vae.safetensors, wan2.2_vae.safetensors "
                          f"or a diffusers AutoencoderKLWan folder")


def to_official(tensors: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The state dict under official names, whatever layout it came in."""
    if detect_layout(tensors, source) == OFFICIAL:
        return dict(tensors)
    return _from_diffusers(tensors, source)


def _from_diffusers(tensors: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    residual = any(re.match(r"encoder\.down_blocks\.\d+\.resnets\.", k) for k in tensors)
    resnets_per_up_stage = 1 + max(
        int(m.group(1)) for k in tensors if (m := re.match(r"decoder\.up_blocks\.0\.resnets\.(\d+)\.", k))
    )
    rules = _diffusers_rules(residual, resnets_per_up_stage)
    out = {}
    for key, tensor in tensors.items():
        for pattern, rename in rules:
            m = pattern.fullmatch(key)
            new_key = rename(m) if m else None
            if new_key is not None:
                out[new_key] = tensor
                break
        else:
            raise CheckpointError(f"{source}: unexpected key {key!r} for a diffusers AutoencoderKLWan; "
                                  f"the file may be another model or a newer layout Kinema does not know")
    return out


def _resnet_tail(tail: str) -> str:
    if tail in _RESNET_PARTS:
        return _RESNET_PARTS[tail]
    conv, _, param = tail.partition(".")
    if conv in _RESNET_CONVS and param in ("weight", "bias"):
        return f"{_RESNET_CONVS[conv]}.{param}"
    raise KeyError(tail)


def _diffusers_rules(residual: bool, up_resnets: int):
    """(pattern, rename) pairs; `up_resnets` = residual blocks per decoder stage (num_res_blocks + 1)."""
    side = r"(encoder|decoder)"
    rules = [
        (r"quant_conv\.(weight|bias)", lambda m: f"conv1.{m[1]}"),
        (r"post_quant_conv\.(weight|bias)", lambda m: f"conv2.{m[1]}"),
        (side + r"\.conv_in\.(weight|bias)", lambda m: f"{m[1]}.conv1.{m[2]}"),
        (side + r"\.norm_out\.gamma", lambda m: f"{m[1]}.head.0.gamma"),
        (side + r"\.conv_out\.(weight|bias)", lambda m: f"{m[1]}.head.2.{m[2]}"),
        (side + r"\.mid_block\.attentions\.0\.((?:norm|to_qkv|proj)\.(?:gamma|weight|bias))",
         lambda m: f"{m[1]}.middle.1.{m[2]}"),
        (side + r"\.mid_block\.resnets\.([01])\.(\w+(?:\.\w+)?)",
         lambda m: f"{m[1]}.middle.{2 * int(m[2])}.{_resnet_tail(m[3])}"),
    ]
    resample = r"((?:resample\.1|time_conv)\.(?:weight|bias))"
    if residual:
        num_res_blocks = up_resnets - 1
        rules += [
            (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+(?:\.\w+)?)",
             lambda m: f"encoder.downsamples.{m[1]}.downsamples.{m[2]}.{_resnet_tail(m[3])}"),
            (r"encoder\.down_blocks\.(\d+)\.downsampler\." + resample,
             lambda m: f"encoder.downsamples.{m[1]}.downsamples.{num_res_blocks}.{m[2]}"),
            (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+(?:\.\w+)?)",
             lambda m: f"decoder.upsamples.{m[1]}.upsamples.{m[2]}.{_resnet_tail(m[3])}"),
            (r"decoder\.up_blocks\.(\d+)\.upsampler\." + resample,
             lambda m: f"decoder.upsamples.{m[1]}.upsamples.{up_resnets}.{m[2]}"),
        ]
    else:
        per_stage = up_resnets + 1  # the decoder is flat in the official layout: blocks, then the upsampler
        rules += [
            (r"encoder\.down_blocks\.(\d+)\." + resample, lambda m: f"encoder.downsamples.{m[1]}.{m[2]}"),
            (r"encoder\.down_blocks\.(\d+)\.(\w+(?:\.\w+)?)",
             lambda m: f"encoder.downsamples.{m[1]}.{_resnet_tail(m[2])}"),
            (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+(?:\.\w+)?)",
             lambda m: f"decoder.upsamples.{int(m[1]) * per_stage + int(m[2])}.{_resnet_tail(m[3])}"),
            (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\." + resample,
             lambda m: f"decoder.upsamples.{int(m[1]) * per_stage + up_resnets}.{m[2]}"),
        ]
    return [(re.compile(p), _checked(f)) for p, f in rules]


def _checked(rename):
    """A rename whose resnet tail may be unknown: report it as 'no rule', so the key is named."""
    def apply(m):
        try:
            return rename(m)
        except KeyError:
            return None
    return apply
