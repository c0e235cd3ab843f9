"""Loader nodes: the DiT, the umT5 text encoder and the video VAE from ComfyUI's model folders."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from . import host
from .sparse_attention import INPUTS as SPARSE_INPUTS, SPARSE3D, attention_setup
from .types import DIT, MODEL, TEXT_ENCODER, VAE, DiTModel, ModelSlot, TextEncoderModel, VAEModel

# DiT: the precision weights are kept in ("default" = as stored: fp8 files stay fp8 and are
# upcast layer by layer when they run). Text encoder and VAE: the precision they compute in.
DTYPES = {"default": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# The DiT also offers fp8 matmuls (NVIDIA GPUs of compute capability 8.9+), under native ComfyUI's name.
DIT_WEIGHT_DTYPES = {**DTYPES, "fp8_e4m3fn_fast": "fp8_e4m3fn_fast"}
ATTENTION_BACKENDS = ["sdpa", "flash", "sage", "auto", SPARSE3D]
CATEGORY = "Kinema/loaders"


def _dtype_input(tooltip: str) -> tuple:
    return (list(DTYPES), {"default": "default", "tooltip": tooltip})


class KinemaDiTLoader:
    DESCRIPTION = ("Loads a Wan 2.1 / 2.2 diffusion transformer (any official, ComfyUI, diffusers, fp8 or GGUF "
                   "file).")
    CATEGORY = CATEGORY
    # "model" is appended after "dit", so saved workflows keep their links.
    RETURN_TYPES = (DIT, MODEL)
    RETURN_NAMES = ("dit", "model")
    OUTPUT_TOOLTIPS = ("The diffusion transformer, for KinemaSampler.",
                       "The same transformer as a native ComfyUI MODEL (Wan flow sampling and shift, Wan latent "
                       "format), for native samplers, LoraLoaderModelOnly, TorchCompileModel, EasyCache; it shares "
                       "the weights and memory with 'dit'. Inside ComfyUI only.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_name": (host.model_files("diffusion_models", extra_extensions=(".gguf",)), {
                    "tooltip": "DiT checkpoint from models/diffusion_models (e.g. wan2.1_t2v_1.3B_fp16.safetensors, "
                               "or a GGUF such as wan2.1-t2v-14b-Q4_K_M.gguf: its weights stay quantised in "
                               "memory and are dequantised layer by layer)."}),
                "weight_dtype": (list(DIT_WEIGHT_DTYPES), {"default": "default", "tooltip":
                    "Precision the weights are kept in. 'default' keeps the file's: an fp8 file stays fp8 in "
                    "memory (half of bf16) and each layer is upcast when it runs; bf16/fp16/fp32 for an fp8 file "
                    "keep it fp8 too and set the precision its layers run in. fp8_e4m3fn_fast: fp8 matrix "
                    "multiplies on RTX 40xx/50xx, L4/L40, H100 or newer (other files are quantised to fp8)."}),
                "attention": (ATTENTION_BACKENDS, {"default": "sdpa", "tooltip":
                    "Attention kernel: sdpa (PyTorch, always available), flash or sage (need their packages), "
                    "auto (the fastest one installed), sparse3d (Kinema's block-sparse 3D attention: each token sees "
                    "its neighbourhood in space and time; faster on long or large videos, dense early steps and "
                    "layers keep the layout, see the sparse_ inputs)."}),
            },
            "optional": {
                "compile": ("BOOLEAN", {"default": False, "tooltip":
                    "Run the transformer blocks through torch.compile: the first step of each video size "
                    "compiles (tens of seconds), later steps run the compiled code. Needs a C++ compiler on CPU "
                    "or Triton on GPU."}),
                "blocks_on_device": ("INT", {"default": -1, "min": -1, "max": 1000, "tooltip":
                    "-1: automatic: ComfyUI's free VRAM (less --reserve-vram) decides how many transformer blocks "
                    "stay on the GPU; the others stream from pinned RAM as they run (the next one copies while the "
                    "current one computes). --novram streams every block, --highvram keeps all. N >= 0: keep N "
                    "blocks on the GPU; 0 uses the least VRAM."}),
                **SPARSE_INPUTS,
            },
        }

    def load(self, model_name: str, weight_dtype: str, attention: str, compile: bool = False,
             blocks_on_device: int = -1, sparse_dense_from_t: float = 900.0, sparse_dense_layers: int = 1):
        from ..core.dit import load_dit
        from ..core.dit.streaming import load_streamed_dit
        from .memory import dit_streaming, manage_dit
        from .native_model import to_native_model

        path = host.model_path("diffusion_models", model_name)
        host.make_room(_file_bytes(path))  # ComfyUI unloads only what must go for this model
        streaming = dit_streaming(host.device_memory(), blocks_on_device)
        backend, policy = attention_setup(attention, sparse_dense_from_t, sparse_dense_layers)
        options = dict(dtype=DIT_WEIGHT_DTYPES[weight_dtype], device=host.torch_device(), attention=backend)
        if streaming is not None:
            model = load_streamed_dit(path, streaming, **options)
        else:
            model = load_dit(path, **options)
        model.set_attention_policy(policy)
        if compile:
            model.compile_blocks()
        dit = DiTModel(manage_dit(model, model_name), model_name)
        return (dit, to_native_model(dit) if host.in_comfyui() else None)


class KinemaTextEncoderLoader:
    DESCRIPTION = "Loads the umT5-XXL text encoder Wan uses (official .pth, ComfyUI or transformers files)."
    CATEGORY = CATEGORY
    RETURN_TYPES = (TEXT_ENCODER,)
    RETURN_NAMES = ("text_encoder",)
    OUTPUT_TOOLTIPS = ("The text encoder, for KinemaTextEncode.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "text_encoder_name": (host.model_files("text_encoders"), {
                    "tooltip": "umT5 checkpoint from models/text_encoders (e.g. umt5_xxl_fp8_e4m3fn_scaled.safetensors)."}),
                "dtype": _dtype_input("Precision the encoder computes in; 'default' is fp32 on CPU, bf16 on GPU "
                                      "(weights stay as stored when narrower)."),
            }
        }

    def load(self, text_encoder_name: str, dtype: str):
        from ..core.text import load_text_encoder
        from .memory import manage_text_encoder

        path = host.model_path("text_encoders", text_encoder_name)
        compute_dtype = DTYPES[dtype]

        def load():
            # Read on the CPU (weights stay memory-mapped); it visits the device for each encode only.
            device = host.torch_device()
            encoder = load_text_encoder(path, device="cpu", dtype=compute_dtype or _default_compute_dtype(device))
            return manage_text_encoder(encoder, text_encoder_name, device)

        # Loaded now so that a wrong file fails here, at its own node, not later at the encode.
        return (TextEncoderModel(ModelSlot(load, load()), text_encoder_name, path, compute_dtype),)


class KinemaVAELoader:
    DESCRIPTION = "Loads the Wan 2.1 (16-channel) or Wan 2.2 (48-channel, for TI2V-5B) video VAE."
    CATEGORY = CATEGORY
    RETURN_TYPES = (VAE,)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The video VAE, for KinemaEmptyLatent, KinemaSampler (start image) and the decoders.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae_name": (host.model_files("vae"), {
                    "tooltip": "VAE checkpoint from models/vae (wan_2.1_vae.safetensors or wan2.2_vae.safetensors)."}),
                "dtype": _dtype_input("Precision the VAE computes in; 'default' is fp32 (the most faithful), "
                                      "bf16 halves memory."),
            }
        }

    def load(self, vae_name: str, dtype: str):
        from ..core.vae import load_vae
        from .memory import manage_vae

        path = host.model_path("vae", vae_name)
        # Read on the CPU; it visits the device for each encode or decode only.
        model = load_vae(path, dtype=DTYPES[dtype], device="cpu")
        return (VAEModel(manage_vae(model, vae_name, host.torch_device()), vae_name),)


def _default_compute_dtype(device: torch.device) -> torch.dtype:
    """The text encoder's compute dtype for 'default' on `device` (as core.text.load_text_encoder picks it)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _file_bytes(path: str) -> int:
    """Bytes of a checkpoint (a file, or a diffusers folder of shards): what loading it asks of the device."""
    if os.path.isdir(path):
        return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
    return os.path.getsize(path)


NODE_CLASS_MAPPINGS = {
    "KinemaDiTLoader": KinemaDiTLoader,
    "KinemaTextEncoderLoader": KinemaTextEncoderLoader,
    "KinemaVAELoader": KinemaVAELoader,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "KinemaDiTLoader": "Kinema DiT Loader",
    "KinemaTextEncoderLoader": "Kinema Text Encoder Loader",
    "KinemaVAELoader": "Kinema VAE Loader",
}
