"""umT5 checkpoint key layouts mapped onto canonical names (those of Wan's official
`models_t5_umt5-xxl-enc-bf16.pth`).

Each layout is a table of anchored rename rules for the renaming engine (core.checkpoints.renaming);
a key that no rule explains is an error naming the file and the key, so a wrong or damaged file
never loads half-way.
"""
from __future__ import annotations

import torch

from ..checkpoints.io import CheckpointError
from ..checkpoints.quant import normalise_quant_keys
from ..checkpoints.renaming import KeyLayout, identity

# ComfyUI text-encoder files carry their sentencepiece model as a uint8 tensor under this key.
EMBEDDED_SPIECE_KEY = "spiece_model"

_LINEAR = r"(weight|weight_scale)"  # weight_scale: per-tensor scale of a scaled-fp8 weight

_EXPECTED_FILES = (
    "Wan needs the umT5-XXL text encoder: umt5_xxl_fp16.safetensors or umt5_xxl_fp8_e4m3fn_scaled.safetensors "
    "(ComfyUI models/text_encoders), or models_t5_umt5-xxl-enc-bf16.pth (official Wan-AI repos)"
)
_HINT = f"The file may be a merge or another model. {_EXPECTED_FILES}"

# Wan's own names, kept as they are.
OFFICIAL = KeyLayout("official umT5 encoder", identity((
    rf"token_embedding\.{_LINEAR}",
    r"blocks\.\d+\.(?:norm1|norm2)\.weight",
    rf"blocks\.\d+\.attn\.[qkvo]\.{_LINEAR}",
    rf"blocks\.\d+\.ffn\.(?:gate\.0|fc1|fc2)\.{_LINEAR}",
    r"blocks\.\d+\.pos_embedding\.embedding\.weight",
    r"norm\.weight",
)), hint=_HINT)

# google/umt5-xxl UMT5EncoderModel names, also used by ComfyUI's umt5_xxl_*.safetensors.
HF = KeyLayout("Hugging Face umT5 encoder", (
    (rf"shared\.{_LINEAR}", r"token_embedding.\1"),
    (r"encoder\.block\.(\d+)\.layer\.0\.layer_norm\.weight", r"blocks.\1.norm1.weight"),
    (rf"encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.([qkvo])\.{_LINEAR}", r"blocks.\1.attn.\2.\3"),
    (r"encoder\.block\.(\d+)\.layer\.0\.SelfAttention\.relative_attention_bias\.weight",
     r"blocks.\1.pos_embedding.embedding.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"blocks.\1.norm2.weight"),
    (rf"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_0\.{_LINEAR}", r"blocks.\1.ffn.gate.0.\2"),
    (rf"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi_1\.{_LINEAR}", r"blocks.\1.ffn.fc1.\2"),
    (rf"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.{_LINEAR}", r"blocks.\1.ffn.fc2.\2"),
    (r"encoder\.final_layer_norm\.weight", "norm.weight"),
    # HF's tied copy of shared.weight; used only when shared.weight is absent (see to_canonical).
    (rf"encoder\.embed_tokens\.{_LINEAR}", r"token_embedding.\1"),
    # A full encoder-decoder T5 file: Wan uses the encoder only.
    (r"(decoder|lm_head)\..*", None),
), hint=_HINT)

LAYOUTS = {"official": OFFICIAL, "hf": HF}


def detect_layout(keys: set[str], source: str) -> str:
    if "token_embedding.weight" in keys or any(k.startswith("blocks.") and ".pos_embedding." in k for k in keys):
        return "official"
    if "shared.weight" in keys or any(k.startswith("encoder.block.") for k in keys):
        return "hf"
    raise CheckpointError(f"{source}: {_describe_other_model(keys)}, not a umT5 text encoder. {_EXPECTED_FILES}")


def _describe_other_model(keys: set[str]) -> str:
    def has(fragment: str) -> bool:
        return any(fragment in k for k in keys)

    # CLIP vision first: it has a patch_embedding too.
    if has("visual.") or has("vision_model."):
        return "this looks like a CLIP vision (image) encoder"
    if has("patch_embedding") or has("self_attn.q.") or has("cross_attn.") or has("diffusion_model."):
        return "this looks like a Wan diffusion model (DiT) — load it with the diffusion-model loader"
    if has("decoder.conv") or has("encoder.conv1") or has("post_quant_conv") or has("decoder.up_blocks"):
        return "this looks like a VAE — load it with the VAE loader"
    if has("text_model.") or has("textual."):
        return "this looks like a CLIP text encoder"
    return f"found no umT5 tensors (no token_embedding.weight or shared.weight among {len(keys)} keys)"


def to_canonical(tensors: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Tensors renamed to official Wan names (scaled-fp8 scales as `<layer>.weight_scale`)."""
    tensors = normalise_quant_keys(tensors)
    if "shared.weight" in tensors:
        tensors = {k: v for k, v in tensors.items() if not k.startswith("encoder.embed_tokens.")}
    return LAYOUTS[detect_layout(set(tensors), source)].to_canonical(tensors, source)
