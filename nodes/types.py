"""What travels on Kinema's own sockets: small frozen records around the core objects."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

# Socket type names: a public API (saved workflows refer to them).
DIT = "KINEMA_DIT"
TEXT_ENCODER = "KINEMA_TEXT_ENCODER"
VAE = "KINEMA_VAE"
CONDITIONING = "KINEMA_CONDITIONING"
MODEL = "MODEL"  # native ComfyUI's diffusion model socket (KinemaDiTLoader makes one, KinemaSampler takes one)


@dataclass(frozen=True)
class DiTModel:
    model: Any  # core.dit.WanDiT
    name: str  # the file as chosen in the loader, for messages


@dataclass(frozen=True)
class VAEModel:
    model: Any  # core.vae.WanVAE
    name: str


class ModelSlot:
    """Holds a model that can be dropped to free memory and is read again from its file on next use.

    ComfyUI caches a loader's output for as long as its inputs do not change, so a node that
    wants to give the memory back cannot just forget the object: it empties the slot instead.
    """

    def __init__(self, load: Callable[[], Any], model: Any = None):
        self._load = load
        self._model = model
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def unload(self) -> None:
        with self._lock:
            self._model = None

    @property
    def loaded(self) -> bool:
        return self._model is not None


@dataclass(frozen=True)
class TextEncoderModel:
    slot: ModelSlot  # holds a core.text.TextEncoder
    name: str
    path: str
    dtype: Optional[torch.dtype]  # None = as stored in the file


@dataclass(frozen=True)
class Conditioning:
    """Encoded prompts for one sampling run (float32 on the CPU)."""

    positive: torch.Tensor  # [L_pos, text_dim]
    negative: torch.Tensor  # [L_neg, text_dim]
    prompt: str
    negative_prompt: str


CLIP_VISION = "KINEMA_CLIP_VISION"
# CLIP image features travel on native ComfyUI's socket type, so native CLIPVisionEncode feeds Kinema's nodes and
# KinemaCLIPVisionEncode feeds native Wan nodes (both read `penultimate_hidden_states`).
CLIP_VISION_OUTPUT = "CLIP_VISION_OUTPUT"


@dataclass(frozen=True)
class ClipVisionModel:
    model: Any  # core.clip_vision.ClipVisionEncoder
    name: str


@dataclass(frozen=True)
class ImageFeatures:
    """Wan's CLIP features of the start image (and the end image after it), float32 on the CPU, under the
    name native ComfyUI's CLIP_VISION_OUTPUT gives them."""

    penultimate_hidden_states: torch.Tensor  # [images, 257, 1280]: start image, then end image

    def __getitem__(self, key: str):  # native nodes also read the output by key
        return getattr(self, key)
