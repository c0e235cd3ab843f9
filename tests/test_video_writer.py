"""The streaming mp4 writer and the VAE's decode straight to a file, read back with PyAV."""
from __future__ import annotations

import os
from fractions import Fraction

import av
import pytest
import torch

from kinema.core.progress import Cancelled, Progress
from kinema.core.vae import load_vae
from kinema.core.video import VideoWriter, as_fps, read_video
from kinema.tests.tiny_vae import save_tiny_vae


def _stream_facts(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.codec_context.pix_fmt, s.average_rate


@pytest.mark.parametrize("fps,expected", [(16, Fraction(16)), (30, Fraction(30)), (29.97, Fraction(30000, 1001)),
                                           ("24000/1001", Fraction(24000, 1001))])
def test_exact_frame_rates(tmp_path, fps, expected):
    assert as_fps(fps) == expected
    path = tmp_path / "clip.mp4"
    with VideoWriter(path, fps) as w:
        w.write(torch.rand(7, 16, 16, 3))
    video = read_video(path)
    assert video.fps == expected and video.frame_count == 7
    assert _stream_facts(path)[:2] == ("h264", "yuv420p")


def test_streams_chunks_and_keeps_content(tmp_path):
    path = tmp_path / "grad.mp4"
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8)
    frame = torch.stack([ramp[None, :].expand(24, 32)] * 3, dim=-1)  # smooth horizontal ramp
    with VideoWriter(path, 16, crf=0) as w:
        for _ in range(3):
            w.write(frame.expand(4, 24, 32, 3))
    video = read_video(path)
    assert video.frames.shape == (12, 24, 32, 3)
    assert (video.frames.float() - frame.float()).abs().mean() < 2.0


def test_odd_sizes_are_padded_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    with VideoWriter(path, 16) as w:
        w.write(torch.rand(3, 23, 31, 3))
    assert (w.height, w.width) == (24, 32)
    assert read_video(path).frames.shape == (3, 24, 32, 3)


def _moving_pattern(t: int, h: int, w: int) -> torch.Tensor:
    """A smooth moving colour pattern with grain, like decoded video: uint8 [t, h, w, 3]."""
    tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    phase = torch.tensor([0.0, 2.0, 4.0])
    smooth = 127.5 + 100 * torch.sin(xx[..., None] / 7 + tt[..., None] / 3 + phase) * torch.cos(yy[..., None] / 5 - tt[..., None] / 4)
    grain = torch.rand(t, h, w, 3, generator=torch.Generator().manual_seed(0)) * 40 - 20
    return (smooth + grain).round().clamp(0, 255).to(torch.uint8)


def _x264_settings(path) -> str:
    """The option string libx264 writes into every stream it makes."""
    data = path.read_bytes()
    start = data.index(b"options: ") + len(b"options: ")
    return data[start:data.index(b"\x00", start)].decode()


def test_same_frames_give_the_same_file_every_time(tmp_path):
    # libx264 with AVX-512 encoded these 17 frames (the demo's length) to a different file about one time
    # in four, more often once the heap had been used; the writer caps it at AVX2 (core/video/x264_cpu.py).
    frames = _moving_pattern(17, 64, 64)  # [17, 64, 64, 3]
    files, pixels = set(), set()
    for i in range(24):
        scratch = [bytearray(os.urandom(1 << 16)) for _ in range(32)]  # leave the heap used, as a long run does
        del scratch
        path = tmp_path / f"same{i}.mp4"
        with VideoWriter(path, 16) as w:
            w.write(frames)
        files.add(path.read_bytes())
        pixels.add(read_video(path).frames.numpy().tobytes())
    assert len(pixels) == 1, f"{len(pixels)} different decoded videos from the same frames"
    assert len(files) == 1, f"{len(files)} different files from the same frames"
    # The fix keeps the settings that make the file small: B-frames and macroblock-tree rate control.
    settings = _x264_settings(path)
    assert "bframes=3" in settings and "mbtree=1" in settings and "crf=18.0" in settings, settings


def test_never_overwrites(tmp_path):
    path = tmp_path / "mine.mp4"
    path.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match="already exists; Kinema never overwrites"):
        VideoWriter(path, 16)
    assert path.read_bytes() == b"user data"


def test_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, 16) as w:
            w.write(torch.rand(2, 16, 16, 3))
            assert not path.exists()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_types(tmp_path):
    with pytest.raises(ValueError, match=r"frames \[t, H, W, 3\]; got \(3, 16, 16\)"):
        with VideoWriter(tmp_path / "a.mp4", 16) as w:
            w.write(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="frame size changed"):
        with VideoWriter(tmp_path / "b.mp4", 16) as w:
            w.write(torch.rand(1, 16, 16, 3))
            w.write(torch.rand(1, 16, 18, 3))
    with pytest.raises(ValueError, match="unsupported video file type '.gif'"):
        VideoWriter(tmp_path / "c.gif", 16)
    with pytest.raises(ValueError, match="no frames were written"):
        with VideoWriter(tmp_path / "d.mp4", 16):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def vae22(tmp_path_factory):
    return load_vae(save_tiny_vae(tmp_path_factory.mktemp("vae"), "2.2", "official_pth"))


def test_decode_to_file_matches_decode(vae22, tmp_path):
    z = torch.randn(1, 48, 3, 2, 3, generator=torch.Generator().manual_seed(0))
    path = vae22.decode_to_file(z, tmp_path / "out.mp4", fps=30, crf=0)
    video = read_video(path)
    assert video.frames.shape == (9, 32, 48, 3) and video.fps == 30
    images = vae22.decode_to_images(z)
    assert images.shape == (9, 32, 48, 3) and images.dtype == torch.float32
    assert torch.allclose(images, (vae22.decode(z)[0].permute(1, 2, 3, 0) + 1) / 2)
    # yuv420p halves the colour resolution of this per-pixel noise: compare frame colours and brightness.
    frames = video.frames.float() / 255
    assert (frames.mean(dim=(1, 2)) - images.mean(dim=(1, 2))).abs().max() < 0.02
    assert (frames.mean(-1) - images.mean(-1)).abs().mean() < 0.06


def test_decode_to_images_flattens_the_batch(vae22):
    z = torch.randn(2, 48, 2, 1, 2)
    images = vae22.decode_to_images(z)
    assert images.shape == (10, 16, 32, 3) and 0 <= images.min() and images.max() <= 1
    assert torch.allclose(images[5:], vae22.decode_to_images(z[1:]), atol=1e-5)


def test_cancelled_decode_leaves_no_file(vae22, tmp_path):
    calls = []

    def cancel_on_second_chunk():
        calls.append(1)
        if len(calls) > 2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        vae22.decode_to_file(torch.randn(1, 48, 4, 1, 2), tmp_path / "c.mp4",
                             progress=Progress(check_cancel=cancel_on_second_chunk))
    assert list(tmp_path.iterdir()) == []


def test_cpu_cap_is_named_only_where_x264_knows_it(monkeypatch):
    from kinema.core.video import x264_cpu

    monkeypatch.setattr(x264_cpu.platform, "machine", lambda: "arm64")
    assert x264_cpu.x264_params() == {}  # x264 on ARM has no "AVX2" name: it would refuse to open
    monkeypatch.setattr(x264_cpu.platform, "machine", lambda: "AMD64")
    monkeypatch.setattr(x264_cpu, "_has_avx2", lambda: False)
    assert x264_cpu.x264_params() == {}  # naming AVX2 on a CPU without it would crash the encoder
    monkeypatch.setattr(x264_cpu, "_has_avx2", lambda: True)
    assert x264_cpu.x264_params() == {"x264-params": "asm=AVX2,Cache64"}
