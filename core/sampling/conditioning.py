"""Image conditioning of Wan I2V models (wan_models.md 8.2, 8.4), as plain tensors.

Two mechanisms:
- channel concat (Wan2.1 I2V-14B, Wan2.2 I2V-A14B): `y` = 4 mask channels + the VAE latent
  of [image, zero (mid-gray) frames...] goes beside the noisy latent into the DiT;
- known latent frames (Wan2.2 TI2V-5B): the image latent is written into frame 0 of the
  sample before the first step and after every step, and those tokens get timestep 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from .shapes import TEMPORAL_STRIDE


# Latent channels of the Wan2.2 VAE: its model (TI2V-5B) takes a start image as a known first latent frame.
KNOWN_FRAME_CHANNELS = 48


def image_mode(dit, channels: int) -> Optional[str]:
    """How a DiT takes a start image for latents of `channels`: "concat" (I2V: mask + image latents beside the
    noise, in_dim > out_dim), "known_frame" (TI2V-5B: a known first latent frame) or None (text-to-video)."""
    in_dim = getattr(getattr(dit, "config", None), "in_dim", None)
    if in_dim is not None and in_dim > channels:
        return "concat"
    return "known_frame" if channels == KNOWN_FRAME_CHANNELS else None


@dataclass(frozen=True)
class ImageConditioning:
    y: Optional[torch.Tensor] = None  # [B, C_y, T, H, W] concatenated to the DiT input (I2V: 4 + 16)
    clip_fea: Optional[torch.Tensor] = None  # Wan2.1 I2V CLIP image features, passed through
    known_latent: Optional[torch.Tensor] = None  # [B, C, T, H, W] values to hold where known_mask = 1
    known_mask: Optional[torch.Tensor] = None  # [1 or B, 1, T, H, W] 1 = known (noise-free), 0 = sampled

    def __post_init__(self) -> None:
        if (self.known_latent is None) != (self.known_mask is None):
            raise ValueError("known_latent and known_mask go together: give both or neither.")

    def to(self, device) -> "ImageConditioning":
        """The same conditioning with every tensor on `device`."""
        move = lambda v: None if v is None else v.to(device)  # noqa: E731
        return ImageConditioning(move(self.y), move(self.clip_fea), move(self.known_latent), move(self.known_mask))


def latent_frame_mask(pixel_known: torch.Tensor) -> torch.Tensor:
    """Per-pixel-frame known flags [F] (F = 4k+1) -> Wan's 4 mask channels [4, F_lat].

    The first pixel frame is repeated so that each latent frame covers 4 pixel frames:
    channel j of latent frame k is padded[4k + j].
    """
    padded = torch.cat([pixel_known[:1].repeat(TEMPORAL_STRIDE - 1), pixel_known])  # [F + 3]
    return padded.reshape(-1, TEMPORAL_STRIDE).transpose(0, 1)  # [4, F_lat]


def i2v_conditioning(image_latent: torch.Tensor, pixel_frames: int, clip_fea: Optional[torch.Tensor] = None,
                     end_frame: bool = False) -> ImageConditioning:
    """`image_latent` [B, 16, F_lat, H, W] = VAE(first frame + zero frames [+ last frame]) -> y [B, 20, F_lat, H, W].

    `end_frame`: the video's last pixel frame is given too (FLF2V), so the mask marks it known
    (channel 3 of the last latent frame).
    """
    batch, _, latent_frames, height, width = image_latent.shape
    known = torch.zeros(pixel_frames, dtype=image_latent.dtype, device=image_latent.device)
    known[0] = 1
    if end_frame:
        known[-1] = 1
    mask = latent_frame_mask(known)  # [4, F_lat]
    if mask.shape[1] != latent_frames:
        raise ValueError(f"image latent has {latent_frames} frames but {pixel_frames} pixel frames need "
                         f"{mask.shape[1]}; encode a video of exactly {pixel_frames} frames.")
    mask = mask[None, :, :, None, None].expand(batch, -1, -1, height, width)  # [B, 4, F_lat, H, W]
    return ImageConditioning(y=torch.cat([mask, image_latent], dim=1), clip_fea=clip_fea)


def ti2v_conditioning(image_latent: torch.Tensor, latent_frames: int) -> ImageConditioning:
    """`image_latent` [B, 48, 1, H, W] of the start image -> known first latent frame."""
    batch, channels, _, height, width = image_latent.shape
    known_latent = image_latent.new_zeros(batch, channels, latent_frames, height, width)
    known_latent[:, :, :1] = image_latent
    known_mask = image_latent.new_zeros(1, 1, latent_frames, height, width)
    known_mask[:, :, 0] = 1
    return ImageConditioning(known_latent=known_latent, known_mask=known_mask)


def impose_known(x: torch.Tensor, cond: Optional[ImageConditioning]) -> torch.Tensor:
    """Overwrite the known parts of the sample `x` [B, C, T, H, W]."""
    if cond is None or cond.known_mask is None:
        return x
    m = cond.known_mask.to(x)
    return m * cond.known_latent.to(x) + (1 - m) * x


def token_timesteps(t: torch.Tensor, known_mask: torch.Tensor, patch: tuple[int, int] = (2, 2)) -> torch.Tensor:
    """Per-token model time [B, T * H/2 * W/2]: t on sampled tokens, 0 on known ones."""
    noisy = 1 - known_mask[:, 0, :, ::patch[0], ::patch[1]]  # [1 or B, T, H/2, W/2]
    return t[:, None] * noisy.flatten(1).to(t)  # [B, L]


def fit_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Image [3, h, w] or [1, 3, h, w] in [-1, 1] -> [1, 3, height, width]: bicubic cover-resize, centre crop."""
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"start_image must be a [3, H, W] or [1, 3, H, W] RGB tensor in [-1, 1], got shape "
                         f"{tuple(image.shape)}; convert a ComfyUI IMAGE [1, H, W, 3] with "
                         "image.permute(0, 3, 1, 2) * 2 - 1.")
    h, w = image.shape[-2:]
    scale = max(height / h, width / w)
    cover = (max(height, round(h * scale)), max(width, round(w * scale)))
    image = F.interpolate(image.float(), size=cover, mode="bicubic", align_corners=False)
    top, left = (cover[0] - height) // 2, (cover[1] - width) // 2
    return image[:, :, top:top + height, left:left + width]  # [1, 3, height, width]


def first_frame_video(image: torch.Tensor, pixel_frames: int, end_image: Optional[torch.Tensor] = None
                      ) -> torch.Tensor:
    """[1, 3, H, W] -> [1, 3, F, H, W]: the image, then zero (mid-gray) frames, as official I2V encodes; with
    `end_image` [1, 3, H, W] the last frame is that image (official FLF2V)."""
    video = image.new_zeros(image.shape[0], 3, pixel_frames, *image.shape[-2:])
    video[:, :, 0] = image
    if end_image is not None:
        video[:, :, -1] = end_image
    return video
