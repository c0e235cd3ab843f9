"""The streaming chain latent -> decode -> frame-rate conversion -> mp4, and the frame-rate nodes."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from kinema.core.interp import FrameRates, frame_rate_converter, get_interpolator, retime
from kinema.core.progress import Progress
from kinema.core.vae import load_vae
from kinema.core.video import read_video
from kinema.nodes import host
from kinema.nodes.decode import KinemaDecodeToVideo
from kinema.nodes.interpolate import KinemaFrameRate, KinemaRetimeSettings, RetimeSettings
from kinema.nodes.types import VAEModel
from moving_scene import render_clip
from tiny_vae import save_tiny_vae

needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None,
                                  reason="OpenCV is not installed (pip install opencv-python-headless)")


@pytest.fixture(scope="module")
def vae(tmp_path_factory):
    return load_vae(save_tiny_vae(tmp_path_factory.mktemp("vae"), "2.1", "official_pth"))


@pytest.fixture
def output_folder(tmp_path):
    host.configure(output=tmp_path)
    yield tmp_path
    host.configure()


def _latents(vae) -> torch.Tensor:
    # 3 latent frames -> 9 video frames at 16 fps -> 16 at 30 fps
    return torch.randn(1, vae.config.z_dim, 3, 2, 4, generator=torch.Generator().manual_seed(1))  # [1, z, T, h, w]


def test_decode_to_file_streams_through_the_frame_rate_converter(vae, tmp_path):
    z = _latents(vae)
    path = vae.decode_to_file(z, tmp_path / "30fps.mp4", fps=30, crf=0,
                              frame_transform=frame_rate_converter(16, 30, "blend"))
    video = read_video(path)
    assert video.fps == 30 and video.frame_count == FrameRates.of(16, 30).output_count(9) == 16
    expected = torch.cat(list(retime([vae.decode_to_images(z)], 16, 30, get_interpolator("blend"))))
    assert (video.frames.float() / 255 - expected).abs().mean() < 0.05  # yuv420p colour subsampling


def test_the_chain_interleaves_decoding_and_writing(vae, tmp_path):
    """Converted frames leave for the encoder while later latent frames are still undecoded."""
    events = []
    convert = frame_rate_converter(16, 30, "blend")

    def logged(chunks):
        for out in convert(chunks):  # [m, H, W, 3]
            events.append(("written", out.shape[0]))
            yield out

    progress = Progress(on_step=lambda done, total, _: events.append(("decoded", done)))
    vae.decode_to_file(_latents(vae), tmp_path / "chain.mp4", fps=30, frame_transform=logged, progress=progress)
    assert [kind for kind, _ in events] == ["decoded", "written"] * 3  # one latent frame, then its frames
    assert sum(n for kind, n in events if kind == "written") == 16


def test_decode_to_video_node_with_retime_settings(vae, output_folder):
    samples = {"samples": _latents(vae)}
    retime_settings = KinemaRetimeSettings().settings(30.0, "blend")[0]
    assert retime_settings == RetimeSettings(30.0, "blend")
    result = KinemaDecodeToVideo().decode(VAEModel(vae, "tiny"), samples, 16, "kinema/retimed", retime_settings)
    video = read_video(result["result"][0])
    assert video.fps == 30 and video.frame_count == 16


@needs_opencv
def test_frame_rate_node_on_an_image_batch(output_folder):
    images = render_clip(24, 0.5, size=64)  # [13, 64, 64, 3]
    truth = render_clip(30, 0.5, size=64)  # [16, 64, 64, 3]
    out = KinemaFrameRate().convert(images, 24.0, 30.0, "dis_flow")[0]
    assert out.shape == truth.shape == (16, 64, 64, 3) and out.dtype == torch.float32
    assert torch.equal(out[::5], images[::4])  # t = 0, 1/6 s, 1/3 s, 1/2 s are input frames
    assert (10 * torch.log10(1 / ((out - truth) ** 2).mean())).item() > 30
    with pytest.raises(ValueError, match="RGB frames"):
        KinemaFrameRate().convert(torch.rand(4, 8, 8, 4), 24.0, 30.0, "blend")
