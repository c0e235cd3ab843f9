"""Wan VAE configurations and the published latent statistics."""
from __future__ import annotations

from dataclasses import dataclass

# Per-channel latent mean/std published with the models (Wan2.1 `vae.py`, Wan2.2 `vae2_2.py`;
# identical in ComfyUI's latent formats and diffusers' configs).
WAN21_LATENT_MEAN = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)
WAN21_LATENT_STD = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)
WAN22_LATENT_MEAN = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
    -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
    -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
    -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
    0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)
WAN22_LATENT_STD = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
    0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
    0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
    0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
    0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)
PUBLISHED_LATENT_STATS = {16: (WAN21_LATENT_MEAN, WAN21_LATENT_STD), 48: (WAN22_LATENT_MEAN, WAN22_LATENT_STD)}


@dataclass(frozen=True)
class VAEConfig:
    version: str  # "2.1" (flat stages, channel-halving upsamplers) or "2.2" (residual stages)
    z_dim: int
    base_dim: int  # encoder width of the first stage
    decoder_base_dim: int
    dim_mult: tuple[int, ...]  # stage widths in units of the base width
    num_res_blocks: int  # residual blocks per encoder stage (decoder stages have one more)
    temporal_downsample: tuple[bool, ...]  # per encoder downsampling stage; the decoder mirrors it
    patch_size: int  # 1, or 2 for Wan2.2's pixel patchify before the encoder
    latents_mean: tuple[float, ...]
    latents_std: tuple[float, ...]

    def __post_init__(self):
        if self.version not in ("2.1", "2.2"):
            raise ValueError(f"unknown Wan VAE version {self.version!r}; expected '2.1' or '2.2'")
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError("temporal_downsample needs one flag per downsampling stage (len(dim_mult) - 1)")
        if not (len(self.latents_mean) == len(self.latents_std) == self.z_dim):
            raise ValueError(f"latent statistics need {self.z_dim} values each")

    @property
    def spatial_stride(self) -> int:
        """Pixels per latent position along H and W (8 for Wan2.1, 16 for Wan2.2)."""
        return 2 ** (len(self.dim_mult) - 1) * self.patch_size

    @property
    def temporal_stride(self) -> int:
        """Video frames per latent frame after the first (4)."""
        return 2 ** sum(self.temporal_downsample)

    @property
    def image_channels(self) -> int:
        """Channels the encoder sees / the decoder returns, after patchify (3 or 12)."""
        return 3 * self.patch_size**2

    def latent_frames(self, video_frames: int) -> int:
        return 1 + (video_frames - 1) // self.temporal_stride

    def video_frames(self, latent_frames: int) -> int:
        return 1 + (latent_frames - 1) * self.temporal_stride


WAN21 = VAEConfig("2.1", 16, 96, 96, (1, 2, 4, 4), 2, (False, True, True), 1, WAN21_LATENT_MEAN, WAN21_LATENT_STD)
WAN22 = VAEConfig("2.2", 48, 160, 256, (1, 2, 4, 4), 2, (False, True, True), 2, WAN22_LATENT_MEAN, WAN22_LATENT_STD)
