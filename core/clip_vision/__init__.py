"""The CLIP ViT-H/14 vision encoder Wan conditions image-to-video and Animate on."""
from .config import VIT_H_14, ClipVisionConfig
from .encoder import ClipVisionEncoder
from .loader import load_clip_vision
from .preprocess import CLIP_MEAN, CLIP_STD, preprocess

__all__ = ["CLIP_MEAN", "CLIP_STD", "VIT_H_14", "ClipVisionConfig", "ClipVisionEncoder", "load_clip_vision",
           "preprocess"]
