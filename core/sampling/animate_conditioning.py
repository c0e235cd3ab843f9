"""Wan2.2-Animate inputs of one clip (wan_models.md 10.2, official `wan/animate.py`).

Latent frame 0 is the reference-image slot, frames 1..F_lat the clip:
- y = [mask 4 (all 1), reference latent 16] for frame 0, then [mask 4, latent 16 of the
  "temporal guidance" video] for the clip: its first `len(carry)` frames are the previous clip's
  last decoded frames (mask 1), the rest zeros (animation) or the background video (replacement,
  where the mask is also 1 outside the character);
- pose_latents = VAE(rendered skeleton video), face_pixels = the face crops, stretched to the
  motion encoder's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .shapes import TEMPORAL_STRIDE


@dataclass(frozen=True)
class AnimateConditioning:
    y: torch.Tensor  # [1, 4 + 16, 1 + F_lat, h, w]
    pose_latents: torch.Tensor  # [1, 16, F_lat, h, w]
    face_pixels: torch.Tensor  # [1, 3, F, S, S] in [-1, 1]
    clip_fea: Optional[torch.Tensor] = None  # [1, 257, 1280] CLIP features of the reference image
    reference_frames: int = 1  # the reference slot: drop it before decoding

    def model_inputs(self) -> dict:
        inputs = {"y": self.y, "pose_latents": self.pose_latents, "face_pixels": self.face_pixels}
        if self.clip_fea is not None:
            inputs["clip_fea"] = self.clip_fea
        return inputs


def animate_conditioning(
    vae,
    reference: torch.Tensor,  # [1, 3, H, W] in [-1, 1], already fitted to the video size
    pose_video: torch.Tensor,  # [1, 3, F, H, W] in [-1, 1], F = 4k + 1
    face_video: torch.Tensor,  # [1, 3, F, h', w'] in [-1, 1]
    *,
    face_size: int = 512,
    carry: Optional[torch.Tensor] = None,  # [1, 3, r, H, W]: last decoded frames of the previous clip
    background: Optional[torch.Tensor] = None,  # replacement mode: [1, 3, F, H, W] scene without the character
    character_mask: Optional[torch.Tensor] = None,  # replacement mode: [1, F, H, W], 1 = character
    clip_fea: Optional[torch.Tensor] = None,
) -> AnimateConditioning:
    _, _, frames, height, width = pose_video.shape
    if (frames - 1) % TEMPORAL_STRIDE:
        raise ValueError(f"an Animate clip needs 4k+1 frames (77 in the release), got {frames}")
    if tuple(reference.shape) != (1, 3, height, width):
        raise ValueError(f"reference image {tuple(reference.shape)} must be [1, 3, {height}, {width}] like the pose video")
    if face_video.shape[:3] != (1, 3, frames):
        raise ValueError(f"face video {tuple(face_video.shape)} must be [1, 3, {frames}, h, w]: one crop per pose frame")
    if (background is None) != (character_mask is None):
        raise ValueError("replacement mode needs both background and character_mask (or neither, for animation)")
    device = getattr(vae, "device", torch.device("cpu"))
    guided = 0 if carry is None else carry.shape[2]
    if guided >= frames:
        raise ValueError(f"{guided} temporal guidance frames leave nothing to generate in a {frames}-frame clip")

    reference_latent = vae.encode(reference.to(device)[:, :, None])  # [1, 16, 1, h, w]
    latent_h, latent_w = reference_latent.shape[-2:]
    guide = torch.zeros(1, 3, frames, height, width, device=device) if background is None else background.to(device)
    if guided:
        guide = torch.cat([carry.to(guide), guide[:, :, guided:]], dim=2)
    guide_latent = vae.encode(guide)  # [1, 16, F_lat, h, w]

    if character_mask is None:
        known = torch.zeros(frames, latent_h, latent_w, device=device)
    else:  # keep the scene: known (1) wherever the character is not
        known = 1 - F.interpolate(character_mask.to(device).float(), size=(latent_h, latent_w), mode="nearest")[0]
    known[:guided] = 1
    y_reference = torch.cat([torch.ones(1, TEMPORAL_STRIDE, 1, latent_h, latent_w, device=device), reference_latent], 1)
    y_clip = torch.cat([frame_mask_channels(known)[None], guide_latent], dim=1)
    return AnimateConditioning(
        y=torch.cat([y_reference, y_clip], dim=2),
        pose_latents=vae.encode(pose_video.to(device)),
        face_pixels=resize_faces(face_video.to(device), face_size),
        clip_fea=clip_fea,
    )


def frame_mask_channels(known: torch.Tensor) -> torch.Tensor:
    """Per-pixel-frame known mask [F, h, w] (F = 4k+1) -> Wan's 4 mask channels [4, F_lat, h, w]:
    the first frame repeated 4 times, so channel j of latent frame k is pixel frame 4k + j - 3."""
    padded = torch.cat([known[:1].expand(TEMPORAL_STRIDE - 1, -1, -1), known])  # [F + 3, h, w]
    return padded.unflatten(0, (-1, TEMPORAL_STRIDE)).transpose(0, 1)


def resize_faces(face_video: torch.Tensor, size: int) -> torch.Tensor:
    """[1, 3, F, h, w] -> [1, 3, F, size, size], stretched like the official cv2.resize (aspect not kept)."""
    if face_video.shape[-2:] == (size, size):
        return face_video.float()
    frames = face_video[0].transpose(0, 1).float()  # [F, 3, h, w]
    resized = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.transpose(0, 1)[None]
