"""Native ComfyUI's own Wan model (`comfy.ldm.wan.model.WanModel`), imported from a ComfyUI checkout
and built the way ComfyUI builds it, for benches that time ours beside it.

The checkout is $KINEMA_COMFYUI, else a `comfyui` folder in the `shared` folder beside this
repository. Only `comfy.ldm.wan.model` and `comfy.ops` (and what they import) are loaded, with
ComfyUI's default command-line settings (`--cpu` when the bench runs on the CPU); its packages
besides torch (einops, ...) are in our `test` extra. Nothing of ComfyUI is copied here.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Union

import torch
from safetensors import safe_open

from kinema.core.dit.config import DiTConfig

SHARED_CHECKOUT = Path(__file__).resolve().parents[2] / "shared" / "comfyui"
_PREFIX = "model.diffusion_model."


@dataclass(frozen=True)
class ComfyWan:
    """The imported ComfyUI modules and the attention native ComfyUI picked on this machine."""

    checkout: Path
    wan: ModuleType  # comfy.ldm.wan.model
    ops: ModuleType  # comfy.ops
    attention: ModuleType  # comfy.ldm.modules.attention

    @property
    def picked_attention(self) -> str:  # e.g. "pytorch" (SDPA), "sub_quad", "sage", "flash"
        return self.attention.optimized_attention.__name__.removeprefix("attention_")

    def sdpa_options(self) -> dict:
        """transformer_options that run every attention call through ComfyUI's SDPA function."""
        sdpa = self.attention.attention_pytorch
        return {"optimized_attention_override": lambda _picked, *args, **kwargs: sdpa(*args, **kwargs)}


def import_comfy(device: torch.device) -> Union[ComfyWan, str]:
    """ComfyUI's Wan modules, or the reason they cannot be imported (the bench then skips)."""
    checkout = Path(os.environ.get("KINEMA_COMFYUI") or SHARED_CHECKOUT)
    if not (checkout / "comfy" / "ldm" / "wan" / "model.py").is_file():
        return f"no ComfyUI checkout at {checkout} (set KINEMA_COMFYUI to one)"
    if str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))
    try:
        cli_args = importlib.import_module("comfy.cli_args")  # parses no command line unless told to
        # Set before comfy.model_management is imported: it picks its device when imported.
        cli_args.args.cpu = device.type == "cpu"
        wan = importlib.import_module("comfy.ldm.wan.model")
        ops = importlib.import_module("comfy.ops")
        attention = importlib.import_module("comfy.ldm.modules.attention")
    except Exception as err:  # a missing package or an incompatible checkout: skip, saying which
        return f"cannot import ComfyUI's Wan model from {checkout}: {type(err).__name__}: {err}"
    return ComfyWan(checkout, wan, ops, attention)


def load_native_wan(comfy: ComfyWan, path: Path, config: DiTConfig, compute_dtype: torch.dtype,
                    device: torch.device) -> torch.nn.Module:
    """ComfyUI's WanModel with the weights of a ComfyUI-layout file, as `load_diffusion_model` builds
    it: the model dtype is the compute dtype, scaled-fp8 files get `scaled_fp8_ops` (fp8 Linear
    layers with `scale_weight`), and each tensor takes the dtype its parameter was declared with."""
    with safe_open(str(path), framework="pt", device="cpu") as f:
        tensors = {key.removeprefix(_PREFIX): f.get_tensor(key) for key in f.keys()}
    marker = tensors.pop("scaled_fp8", None)
    scaled_fp8 = None if marker is None else marker.dtype
    operations = comfy.ops.pick_operations(compute_dtype, None, load_device=device, scaled_fp8=scaled_fp8)
    with torch.device("meta"):
        model = comfy.wan.WanModel(
            model_type="t2v", patch_size=config.patch_size, text_len=config.text_len, in_dim=config.in_dim,
            dim=config.dim, ffn_dim=config.ffn_dim, freq_dim=config.freq_dim, text_dim=config.text_dim,
            out_dim=config.out_dim, num_heads=config.num_heads, num_layers=config.num_layers, qk_norm=True,
            cross_attn_norm=True, eps=config.eps, dtype=compute_dtype, operations=operations,
        )
    # ComfyUI copies each file tensor into its parameter (casting to the declared dtype); assigning
    # the same values in that dtype gives the same model without a second copy of matching tensors.
    declared = {key: value.dtype for key, value in model.state_dict().items()}
    tensors = {key: value if value.dtype == declared.get(key, value.dtype) else value.to(declared[key])
               for key, value in tensors.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.requires_grad_(False).to(device).eval()


def native_call(model: torch.nn.Module, options: dict) -> Callable[..., torch.Tensor]:
    """`call(x, t, context)` in the model's own convention (inputs already in the compute dtype)."""
    return lambda x, t, context: model(x, t, context, transformer_options=options)
