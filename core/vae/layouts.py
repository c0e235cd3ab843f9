"""Which layout a VAE checkpoint is in, and renaming it to the official Wan key names.

Official `.pth` files and ComfyUI's repackaged `.safetensors` already use the official names.
diffusers (`AutoencoderKLWan`) renames blocks and nests the decoder stages; each of its keys is
rewritten by one of the anchored rules below (run by core.checkpoints.renaming), and a key no rule
explains is an error.
"""
from __future__ import annotations

import re

import torch

from ..checkpoints.io import CheckpointError
from ..checkpoints.renaming import KeyLayout, Rule, compose, identity

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

# diffusers WanResidualBlock parameter -> official residual block (a Sequential: norm, act, conv, ...).
_RESNET_PARTS = (
    (r"norm1\.gamma", "residual.0.gamma"),
    (r"conv1\.(weight|bias)", r"residual.2.\1"),
    (r"norm2\.gamma", "residual.3.gamma"),
    (r"conv2\.(weight|bias)", r"residual.6.\1"),
    (r"conv_shortcut\.(weight|bias)", r"shortcut.\1"),
)
# A resampler's convolutions keep their names; only where the resampler sits changes.
_RESAMPLE_PARTS = identity([r"(?:resample\.1|time_conv)\.(?:weight|bias)"])
_HINT = "The file may be another model or a newer layout Kinema does not know"


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
        return dict(tensors)  # official names; the loader checks them against the network it builds
    return _diffusers_layout(tensors).to_canonical(tensors, source)


def _diffusers_layout(tensors: dict[str, torch.Tensor]) -> KeyLayout:
    """The diffusers AutoencoderKLWan rules; they depend on the file's depth, so they are built per file."""
    residual = any(re.match(r"encoder\.down_blocks\.\d+\.resnets\.", k) for k in tensors)
    resnets_per_up_stage = 1 + max(
        int(m.group(1)) for k in tensors if (m := re.match(r"decoder\.up_blocks\.0\.resnets\.(\d+)\.", k))
    )
    return KeyLayout("diffusers AutoencoderKLWan", _diffusers_rules(residual, resnets_per_up_stage), hint=_HINT)


def _diffusers_rules(residual: bool, up_resnets: int) -> tuple[Rule, ...]:
    """`up_resnets` = residual blocks per decoder stage (num_res_blocks + 1)."""
    side = r"(encoder|decoder)"
    rules = (
        (r"quant_conv\.(weight|bias)", r"conv1.\1"),
        (r"post_quant_conv\.(weight|bias)", r"conv2.\1"),
        (side + r"\.conv_in\.(weight|bias)", r"\1.conv1.\2"),
        (side + r"\.norm_out\.gamma", r"\1.head.0.gamma"),
        (side + r"\.conv_out\.(weight|bias)", r"\1.head.2.\2"),
        (side + r"\.mid_block\.attentions\.0\.((?:norm|to_qkv|proj)\.(?:gamma|weight|bias))", r"\1.middle.1.\2"),
        *compose([(side + r"\.mid_block\.resnets\.([01])", lambda m: f"{m[1]}.middle.{2 * int(m[2])}")],
                 _RESNET_PARTS),
    )
    if residual:
        num_res_blocks = up_resnets - 1
        return rules + compose([
            (r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)", r"encoder.downsamples.\1.downsamples.\2"),
            (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)", r"decoder.upsamples.\1.upsamples.\2"),
        ], _RESNET_PARTS) + compose([
            (r"encoder\.down_blocks\.(\d+)\.downsampler", rf"encoder.downsamples.\1.downsamples.{num_res_blocks}"),
            (r"decoder\.up_blocks\.(\d+)\.upsampler", rf"decoder.upsamples.\1.upsamples.{up_resnets}"),
        ], _RESAMPLE_PARTS)
    per_stage = up_resnets + 1  # the decoder is flat in the official layout: blocks, then the upsampler
    return rules + compose([
        (r"encoder\.down_blocks\.(\d+)", r"encoder.downsamples.\1"),
    ], _RESAMPLE_PARTS + _RESNET_PARTS) + compose([
        (r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)",
         lambda m: f"decoder.upsamples.{int(m[1]) * per_stage + int(m[2])}"),
    ], _RESNET_PARTS) + compose([
        (r"decoder\.up_blocks\.(\d+)\.upsamplers\.0", lambda m: f"decoder.upsamples.{int(m[1]) * per_stage + up_resnets}"),
    ], _RESAMPLE_PARTS)
