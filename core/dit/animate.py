"""Wan2.2-Animate-14B: an I2V DiT (CLIP branch, 36 input channels) driven by a pose video and a face video.

Latent frame 0 is the reference-image slot; frames 1..T-1 are the clip (wan_models.md 10.2).
- pose: the VAE latents of the rendered skeleton, patch-embedded by `pose_patch_embedding`,
  are added to the embedded tokens of frames 1..T-1;
- face: 512 x 512 face crops -> motion encoder -> face encoder -> motion tokens per latent frame
  (a zero frame for the reference slot); a face adapter block after main blocks 0, k, 2k, ...
  adds cross-attention from each frame's tokens to that frame's motion tokens.
"""
from __future__ import annotations

import torch

from .blocks import BlockInputs
from .config import DiTConfig
from .context import PreparedContext
from .embeddings import PatchEmbedding
from .face_blocks import FaceAdapter, FaceEncoder
from .model import WanDiT
from .motion_encoder import MotionEncoder


class WanAnimate(WanDiT):
    """`dit(x, t, context, y=..., clip_fea=..., pose_latents=[B, 16, T-1, H, W], face_pixels=[B, 3, F, 512, 512])`.

    F = 4 (T - 2) + 1 face frames (one per pixel frame of the clip), in [-1, 1]; all -1 is the
    official "no face" input of the unconditional pass.
    """

    def __init__(self, config: DiTConfig, attention: str = "sdpa", compute_dtype: torch.dtype = torch.float32):
        super().__init__(config, attention=attention, compute_dtype=compute_dtype)
        c, a = config, config.animate
        self.pose_patch_embedding = PatchEmbedding(a.pose_dim, c.dim, c.patch_size)
        self.motion_encoder = MotionEncoder(a)
        self.face_encoder = FaceEncoder(a.motion_out_dim, a.face_hidden_dim, a.face_heads, c.dim)
        self.face_adapter = FaceAdapter(c.dim, c.num_heads, c.eps, c.num_layers // a.face_every)

    def encode_face(self, face_pixels: torch.Tensor) -> torch.Tensor:
        """[B, 3, F, S, S] in [-1, 1] -> motion tokens [B, 1 + (F - 1) / 4, heads + 1, dim] (frame 0: zeros)."""
        if face_pixels.ndim != 5 or face_pixels.shape[1] != 3:
            raise ValueError(f"face_pixels must be [B, 3, F, H, W] RGB in [-1, 1], got {tuple(face_pixels.shape)}")
        batch, _, frames = face_pixels.shape[:3]
        faces = face_pixels.transpose(1, 2).flatten(0, 1).to(self.compute_dtype)  # [B*F, 3, S, S]
        motion = self.motion_encoder(faces).unflatten(0, (batch, frames))  # [B, F, out] float32
        tokens = self.face_encoder(motion.to(self.compute_dtype))  # [B, F', heads + 1, dim]
        return torch.cat([torch.zeros_like(tokens[:, :1]), tokens], dim=1)  # reference slot first

    def _sequence_unit(self, grid: tuple[int, int, int]) -> int:
        return grid[1] * grid[2]  # the face adapter attends frame by frame: slices hold whole frames

    def _transformer(self, tokens: torch.Tensor, context: PreparedContext, shared: BlockInputs,
                     grid: tuple[int, int, int], *, pose_latents: torch.Tensor = None,
                     face_pixels: torch.Tensor = None) -> torch.Tensor:
        c, a = self.config, self.config.animate
        frames, height, width = grid
        if pose_latents is None or face_pixels is None:
            raise ValueError("this DiT is Wan2.2 Animate: pass pose_latents (VAE latents of the pose video) and "
                             "face_pixels (face crops); build them with core.sampling.animate_conditioning")
        expected = (tokens.shape[0], a.pose_dim, frames - 1, height * c.patch_size[1], width * c.patch_size[2])
        if tuple(pose_latents.shape) != expected:
            raise ValueError(f"pose_latents shape {tuple(pose_latents.shape)}; expected {list(expected)}: one latent "
                             f"frame fewer than the sampled latents (frame 0 is the reference image)")
        per_frame = height * width
        pose = self.pose_patch_embedding(pose_latents.to(self.compute_dtype)).float()  # [B, (T-1) h w, dim]
        if shared.sequence is None:
            tokens = torch.cat([tokens[:, :per_frame], tokens[:, per_frame:] + pose], dim=1)
        else:  # this rank's tokens are whole frames (`_sequence_unit`); the reference slot gets no pose
            tokens = tokens + shared.local(torch.nn.functional.pad(pose, (0, 0, per_frame, 0)))
        motion = self.encode_face(face_pixels)  # [B, T, N, dim]
        if motion.shape[1] != frames:
            raise ValueError(f"face_pixels has {face_pixels.shape[2]} frames, which give {motion.shape[1] - 1} latent "
                             f"frames; the clip has {frames - 1}: pass {4 * (frames - 2) + 1} face frames")
        motion = shared.local_frames(motion)  # [B, T_r, N, dim]: the frames this rank's tokens belong to
        for i, (block, keys_values) in enumerate(zip(self.blocks, context.blocks)):
            tokens = block(tokens, keys_values, shared)
            if i % a.face_every == 0:
                tokens = tokens + self.face_adapter.fuser_blocks[i // a.face_every](tokens, motion, shared.backend)
        return tokens
