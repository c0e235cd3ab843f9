"""Pose-driven conditioning nodes: Wan2.2 Animate and Wan2.1 VACE inputs for KinemaSampler.

Each builds a KINEMA_BRANCH_CONDITIONING (a core.sampling.BranchConditioning): the extra DiT inputs,
the latent shape to sample (reference frames included) and how many leading latent frames to drop
after sampling.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch

from ..core.sampling.branch import BranchConditioning
from . import host
from .types import CLIP_VISION_OUTPUT, DIT, VAE, DiTModel, VAEModel

log = logging.getLogger("kinema")

BRANCH_CONDITIONING = "KINEMA_BRANCH_CONDITIONING"
CLIP_TOKENS = 257  # CLIP ViT-H/14 penultimate tokens the Animate model was trained with


def _video(images: torch.Tensor, frames: int, height: int, width: int) -> torch.Tensor:
    """ComfyUI IMAGE [N, h, w, 3] in 0..1 -> [1, 3, frames, height, width] in [-1, 1]; a short video repeats its
    last frame (as ComfyUI's WanAnimateToVideo), a long one is cut."""
    images = images[:frames]
    if images.shape[0] < frames:
        images = torch.cat([images, images[-1:].expand(frames - images.shape[0], -1, -1, -1)])
    video = images.permute(0, 3, 1, 2).float()  # [F, 3, h, w]
    if video.shape[-2:] != (height, width):
        video = torch.nn.functional.interpolate(video, size=(height, width), mode="bilinear", align_corners=False,
                                                antialias=True)
    return (video * 2 - 1).transpose(0, 1)[None]


def _padded_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """IMAGE [N, h, w, 3] (first used) -> [1, 3, height, width] in [-1, 1], fitted with black bars (official)."""
    picture = image[:1].permute(0, 3, 1, 2).float()
    h, w = picture.shape[-2:]
    scale = min(height / h, width / w)
    new_h, new_w = max(1, int(h * scale)), max(1, int(w * scale))
    resized = torch.nn.functional.interpolate(picture, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                              antialias=True)
    canvas = torch.zeros(1, 3, height, width)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[:, :, top:top + new_h, left:left + new_w] = resized
    return canvas * 2 - 1


def _size_inputs(frames_default: int) -> dict:
    return {
        "width": ("INT", {"default": 832, "min": 16, "max": 4096, "step": 16, "tooltip": "Video width in pixels."}),
        "height": ("INT", {"default": 480, "min": 16, "max": 4096, "step": 16, "tooltip": "Video height in pixels."}),
        "frames": ("INT", {"default": frames_default, "min": 5, "max": 1025, "step": 4, "tooltip":
                           "Frames of the clip (4k+1); longer driving videos are cut, shorter ones hold the last frame."}),
    }


class KinemaAnimateConditioning:
    DESCRIPTION = ("Wan2.2 Animate inputs: the character photo, the rendered pose video and the face crops "
                   "(KinemaPoseRender) for one clip of `frames`. Connect to KinemaSampler's branch input with the "
                   "Animate DiT. With KinemaSampler's long_video input too, the whole driving video is animated in "
                   "clips of `frames` (77 as released), each continuing the last frames of the one before.")
    CATEGORY = "Kinema/conditioning"
    RETURN_TYPES = (BRANCH_CONDITIONING,)
    RETURN_NAMES = ("branch",)
    OUTPUT_TOOLTIPS = ("Animate conditioning for KinemaSampler (latent size, pose, face, reference).",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dit": (DIT, {"tooltip": "The Wan2.2 Animate DiT (its face encoder sets the face crop size)."}),
                "vae": (VAE, {"tooltip": "The Wan2.1 VAE that encodes the reference and pose video."}),
                "reference_image": ("IMAGE", {"tooltip": "The character to animate (full body works best)."}),
                "pose_video": ("IMAGE", {"tooltip": "Rendered skeleton frames (KinemaPoseRender, wan_animate style)."}),
                "face_video": ("IMAGE", {"tooltip": "Face crops, one per pose frame (KinemaPoseRender face_crops)."}),
                **_size_inputs(77),
            },
            "optional": {
                "clip_vision_output": (CLIP_VISION_OUTPUT, {"tooltip":
                    "CLIP ViT-H features of the reference image (KinemaCLIPVisionEncode or native CLIPVisionEncode). "
                    "Without it the model gets zero image features and keeps the character's identity less well."}),
                "background_video": ("IMAGE", {"tooltip": "Replacement mode: the scene without the character."}),
                "character_mask": ("MASK", {"tooltip": "Replacement mode: 1 where the character is, per frame."}),
            },
        }

    def build(self, dit: DiTModel, vae: VAEModel, reference_image, pose_video, face_video, width: int, height: int,
              frames: int, clip_vision_output=None, background_video=None, character_mask=None):
        from ..core.sampling.animate_conditioning import animate_conditioning
        from ..core.sampling.segments import AnimateBranch

        config = dit.model.config
        if config.animate is None:
            raise ValueError(f"KinemaAnimateConditioning: {dit.name} is not a Wan2.2 Animate model; load "
                             "wan2.2_animate_14B in KinemaDiTLoader.")
        face = _video(face_video, frames, *face_video.shape[1:3])
        background = None if background_video is None else _video(background_video, frames, height, width)
        mask = None
        if character_mask is not None:
            mask = _video(character_mask[..., None].expand(-1, -1, -1, 3), frames, height, width)[:, 0] * 0.5 + 0.5
        cond = animate_conditioning(
            vae.model, _padded_image(reference_image, height, width), _video(pose_video, frames, height, width),
            face, face_size=config.animate.face_size, background=background, character_mask=mask,
            clip_fea=self._clip_features(clip_vision_output, config.image_dim),
        )
        stride = vae.model.config.spatial_stride
        shape = (1, config.out_dim, cond.y.shape[2], height // stride, width // stride)
        inputs = {k: v.cpu() for k, v in cond.model_inputs().items()}
        drive = self._drive(vae, cond, reference_image, pose_video, face_video, background_video, character_mask,
                            height, width, frames, config.animate.face_size)
        host.empty_cache()
        return (AnimateBranch("animate", inputs, shape, cond.reference_frames, drive),)

    @staticmethod
    def _drive(vae, cond, reference_image, pose_video, face_video, background_video, character_mask, height, width,
               frames, face_size):
        """The whole driving video for KinemaSampler's long_video input (clips of `frames`), read clip by clip:
        each clip's images are converted only when it is sampled."""
        from ..core.sampling.segments import AnimateDrive, FrameSource

        def source(images, size, mask=False):
            if images is None:
                return None
            if mask:
                images = images[..., None].expand(-1, -1, -1, 3)  # MASK [N, h, w] -> [N, h, w, 3]
            read = lambda indices: _video(images.index_select(0, indices), len(indices), *size)  # noqa: E731
            return FrameSource(images.shape[0], (lambda i: read(i)[:, 0] * 0.5 + 0.5) if mask else read)

        return AnimateDrive(
            vae.model, _padded_image(reference_image, height, width), source(pose_video, (height, width)),
            source(face_video, tuple(face_video.shape[1:3])), face_size, frames,
            source(background_video, (height, width)), source(character_mask, (height, width), mask=True),
            cond.clip_fea)

    @staticmethod
    def _clip_features(clip_vision_output, image_dim: int) -> torch.Tensor:
        from .clip_vision import image_features_tensor

        if clip_vision_output is None:
            log.warning("KinemaAnimateConditioning: no clip_vision_output connected; using zero CLIP features "
                        "(connect KinemaCLIPVisionEncode with clip_vision_h for the trained identity cue)")
            return torch.zeros(1, CLIP_TOKENS, image_dim)
        features = image_features_tensor(clip_vision_output, "KinemaAnimateConditioning", first_image_only=True)
        if features.shape[-1] != image_dim:
            raise ValueError(f"KinemaAnimateConditioning: CLIP features are {features.shape[-1]} wide, the model "
                             f"takes {image_dim}; use clip_vision_h (ViT-H/14).")
        return features


class KinemaVACEConditioning:
    DESCRIPTION = ("Wan2.1 VACE inputs: a control video (e.g. a rendered pose, openpose style), an optional mask of "
                   "what to generate and an optional reference image. Connect to KinemaSampler's branch input.")
    CATEGORY = "Kinema/conditioning"
    RETURN_TYPES = (BRANCH_CONDITIONING,)
    RETURN_NAMES = ("branch",)
    OUTPUT_TOOLTIPS = ("VACE conditioning for KinemaSampler (latent size, control context, strength).",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "vae": (VAE, {"tooltip": "The Wan2.1 VAE."}),
                **_size_inputs(81),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01, "tooltip":
                                       "How strongly the control steers the video (Wan: 1.0)."}),
            },
            "optional": {
                "control_video": ("IMAGE", {"tooltip": "Frames to follow (pose skeleton, depth, ...)."}),
                "control_mask": ("MASK", {"tooltip": "1 where to generate, 0 where to keep the control video."}),
                "reference_image": ("IMAGE", {"tooltip": "Who/what should appear (pasted on white, as trained)."}),
            },
        }

    def build(self, vae: VAEModel, width: int, height: int, frames: int, strength: float, control_video=None,
              control_mask=None, reference_image=None):
        from ..core.sampling.vace_conditioning import vace_conditioning

        video = None if control_video is None else _video(control_video, frames, height, width)
        mask = None
        if control_mask is not None:
            mask = _video(control_mask[..., None].expand(-1, -1, -1, 3), frames, height, width)[:, 0] * 0.5 + 0.5
        references = [] if reference_image is None else [reference_image[0].permute(2, 0, 1).float() * 2 - 1]
        cond = vace_conditioning(vae.model, frames=frames, height=height, width=width, control_video=video, mask=mask,
                                 reference_images=references, strength=strength)
        _, _, latent_frames, h, w = cond.context.shape
        shape = (1, vae.model.config.z_dim, latent_frames, h, w)
        inputs = {"vace_context": cond.context.cpu(), "vace_strength": strength}
        host.empty_cache()
        return (BranchConditioning("vace", inputs, shape, cond.reference_frames),)


NODE_CLASS_MAPPINGS = {"KinemaAnimateConditioning": KinemaAnimateConditioning,
                       "KinemaVACEConditioning": KinemaVACEConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"KinemaAnimateConditioning": "Kinema Animate Conditioning",
                              "KinemaVACEConditioning": "Kinema VACE Conditioning"}
