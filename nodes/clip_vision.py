"""CLIP vision nodes: load Wan's ViT-H/14 image encoder and encode start / end images into the image
features that Wan2.1 I2V-14B, FLF2V and Wan2.2 Animate read."""
from __future__ import annotations

from typing import Optional

import torch

from . import host
from .types import CLIP_VISION, CLIP_VISION_OUTPUT, ClipVisionModel, ImageFeatures

CLIP_DTYPES = {"default": None, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


class KinemaCLIPVisionLoader:
    DESCRIPTION = ("Loads the ViT-H/14 CLIP vision encoder Wan's image-to-video and Animate models read "
                   "(clip_vision_h.safetensors, or Wan's official open-clip .pth).")
    CATEGORY = "Kinema/loaders"
    RETURN_TYPES = (CLIP_VISION,)
    RETURN_NAMES = ("clip_vision",)
    OUTPUT_TOOLTIPS = ("The CLIP vision encoder, for KinemaCLIPVisionEncode.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip_name": (host.model_files("clip_vision"), {"tooltip":
                    "CLIP vision file from models/clip_vision: clip_vision_h.safetensors (ComfyUI), "
                    "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth (Wan-AI) or a transformers "
                    "CLIPVisionModel file."}),
                "dtype": (list(CLIP_DTYPES), {"default": "default", "tooltip":
                    "Precision it computes in; 'default' is fp16 on GPU (as Wan runs it), fp32 on CPU."}),
            }
        }

    def load(self, clip_name: str, dtype: str):
        from ..core.clip_vision import load_clip_vision

        path = host.model_path("clip_vision", clip_name)
        return (ClipVisionModel(load_clip_vision(path, dtype=CLIP_DTYPES[dtype], device=host.torch_device()),
                                clip_name),)


class KinemaCLIPVisionEncode:
    DESCRIPTION = ("Encodes the start image (and an optional end image) with Wan's CLIP preprocessing: the whole "
                   "picture squashed to 224x224, never cropped. Connect to KinemaSampler's image_features "
                   "(I2V-14B, FLF2V) or KinemaAnimateConditioning's clip_vision_output.")
    CATEGORY = "Kinema/conditioning"
    RETURN_TYPES = (CLIP_VISION_OUTPUT,)
    RETURN_NAMES = ("image_features",)
    OUTPUT_TOOLTIPS = ("CLIP features (257 tokens per image; start then end) for the sampler or Animate.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clip_vision": (CLIP_VISION, {"tooltip": "From KinemaCLIPVisionLoader."}),
                "image": ("IMAGE", {"tooltip": "The start image (the same one given to the sampler's start_image) "
                                               "or Animate's reference photo; the first of a batch is used."}),
            },
            "optional": {
                "end_image": ("IMAGE", {"tooltip":
                    "FLF2V: the end frame too (the same one given to the sampler's end_image)."}),
            },
        }

    def encode(self, clip_vision: ClipVisionModel, image: torch.Tensor, end_image: Optional[torch.Tensor] = None):
        pictures = [image[:1]] + ([] if end_image is None else [end_image[:1]])
        features = []
        with host.progress("Kinema CLIP vision", len(pictures)) as progress:
            for done, picture in enumerate(pictures, start=1):
                progress.check()
                rgb = picture.permute(0, 3, 1, 2).float() * 2 - 1  # [1, 3, h, w] in [-1, 1]
                features.append(clip_vision.model.encode(rgb))  # [1, 257, 1280]
                progress.step(done, len(pictures))
        return (ImageFeatures(torch.cat(features)),)  # [images, 257, 1280]


def image_features_tensor(value, node: str, first_image_only: bool = False) -> Optional[torch.Tensor]:
    """An image-features input -> clip_fea [1, images x 257, D] float32 on the CPU (None stays None);
    `first_image_only`: the first image's [1, 257, D].

    Takes KinemaCLIPVisionEncode's output or native ComfyUI's CLIP_VISION_OUTPUT: both hold
    penultimate_hidden_states [N, 257, D] (N images: start, then end), the same block's tokens.
    """
    if value is None:
        return None
    hidden = getattr(value, "penultimate_hidden_states", None)
    if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3:
        raise ValueError(f"{node}: image features must come from KinemaCLIPVisionEncode or native CLIPVisionEncode "
                         f"(CLIP_VISION_OUTPUT with penultimate_hidden_states), got {type(value).__name__}.")
    hidden = hidden[:1] if first_image_only else hidden
    return hidden.float().cpu().reshape(1, -1, hidden.shape[-1])  # images side by side in token order


NODE_CLASS_MAPPINGS = {"KinemaCLIPVisionLoader": KinemaCLIPVisionLoader,
                       "KinemaCLIPVisionEncode": KinemaCLIPVisionEncode}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaCLIPVisionLoader": "Kinema CLIP Vision Loader",
                              "KinemaCLIPVisionEncode": "Kinema CLIP Vision Encode"}
