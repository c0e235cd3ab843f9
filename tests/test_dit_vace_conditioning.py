"""VACE control context (Wan spec 9.3): mask folding against diffusers' WanVACEPipeline.prepare_masks,
the inactive/reactive split and reference frames against closed forms with a transparent stand-in VAE."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from kinema.core.sampling.vace_conditioning import vace_conditioning, white_canvas_fit


class PoolVAE:
    """Wan-shaped, transparent encode: latent frame k = pixel frame 4k, 8x8 average-pooled, 16 channels."""

    config = SimpleNamespace(spatial_stride=8, temporal_stride=4, z_dim=16)
    device = torch.device("cpu")

    def encode(self, video):  # [B, 3, 4k+1, H, W] -> [B, 16, k+1, H/8, W/8]
        pooled = F.avg_pool3d(video[:, :, ::4], (1, 8, 8))
        return torch.cat([pooled, -pooled, 2 * pooled, pooled ** 2, pooled, -pooled] * 3, dim=1)[:, :16]


FRAMES, HEIGHT, WIDTH = 9, 32, 48


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(1, 3, FRAMES, HEIGHT, WIDTH, generator=g) * 2 - 1
    mask = (torch.rand(1, FRAMES, HEIGHT, WIDTH, generator=g) > 0.5).float()
    return video, mask


def test_mask_channels_match_diffusers_prepare_masks():
    from diffusers.pipelines.wan.pipeline_wan_vace import WanVACEPipeline

    video, mask = _inputs()
    reference = torch.rand(3, 20, 16) * 2 - 1
    ours = vace_conditioning(PoolVAE(), frames=FRAMES, height=HEIGHT, width=WIDTH, control_video=video, mask=mask,
                             reference_images=[reference])
    fake_pipe = SimpleNamespace(vae_scale_factor_temporal=4, vae_scale_factor_spatial=8,
                                transformer=SimpleNamespace(config=SimpleNamespace(patch_size=(1, 2, 2))))
    expected = WanVACEPipeline.prepare_masks(fake_pipe, mask[:, None], reference_images=[[reference]])  # [1, 64, ...]
    assert ours.context.shape == (1, 96, 1 + 3, HEIGHT // 8, WIDTH // 8) and ours.reference_frames == 1
    torch.testing.assert_close(ours.context[:, 32:], expected, rtol=0, atol=0)


def test_inactive_reactive_split_and_reference_frame():
    video, mask = _inputs(1)
    vae = PoolVAE()
    reference = torch.rand(3, 20, 16) * 2 - 1
    ours = vace_conditioning(vae, frames=FRAMES, height=HEIGHT, width=WIDTH, control_video=video, mask=mask * 0.9,
                             reference_images=[reference], strength=0.7)
    keep = (mask * 0.9 <= 0.5).float()[:, None]  # binarised at 0.5: 1 = keep (inactive)
    torch.testing.assert_close(ours.context[:, :16, 1:], vae.encode(video * keep))
    torch.testing.assert_close(ours.context[:, 16:32, 1:], vae.encode(video * (1 - keep)))
    # reference: fitted (20x16 -> 32x25.6 -> 32x25) onto a white canvas, its latent beside zeros
    canvas = torch.ones(3, HEIGHT, WIDTH)
    canvas[:, :, 11:36] = F.interpolate(reference[None], size=(32, 25), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(white_canvas_fit(reference, HEIGHT, WIDTH), canvas)
    torch.testing.assert_close(ours.context[:, :16, :1], vae.encode(canvas[None, :, None]))
    assert not ours.context[:, 16:, :1].any()
    assert ours.model_inputs()["vace_strength"] == 0.7


def test_defaults_generate_everything():
    """No control video: zeros (mid-gray), no mask: all generated, so everything is 'reactive'."""
    ours = vace_conditioning(PoolVAE(), frames=FRAMES, height=HEIGHT, width=WIDTH)
    assert ours.reference_frames == 0 and ours.context.shape[2] == 3
    assert not ours.context[:, :32].any() and (ours.context[:, 32:] == 1).all()


def test_bad_inputs():
    video, mask = _inputs()
    with pytest.raises(ValueError, match="4k\\+1 frames"):
        vace_conditioning(PoolVAE(), frames=8, height=HEIGHT, width=WIDTH)
    with pytest.raises(ValueError, match="control_video has shape"):
        vace_conditioning(PoolVAE(), frames=FRAMES, height=HEIGHT, width=WIDTH, control_video=video[:, :, :5])
    with pytest.raises(ValueError, match="RGB"):
        vace_conditioning(PoolVAE(), frames=FRAMES, height=HEIGHT, width=WIDTH, reference_images=[mask[0]])
