"""Frame-rate conversion: quality against analytically rendered truth, exact counts and timestamps,
bounded streaming, errors."""
from __future__ import annotations

import gc
import importlib.util
import math
import subprocess
import sys
import weakref
from fractions import Fraction

import pytest
import torch

from kinema.core.interp import FrameRates, frame_rate_converter, get_interpolator, retime
from moving_scene import render_clip

needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None,
                                  reason="OpenCV is not installed (pip install opencv-python-headless)")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return (10 * torch.log10(1 / ((a - b) ** 2).mean())).item()


# --- quality: the same moving scene rendered at fps_in and at 30 fps ---------------------------

@needs_opencv
@pytest.mark.parametrize("fps_in", [16, 24])
def test_flow_interpolation_matches_true_30fps_and_beats_blending(fps_in):
    seconds, size = 0.75, 96
    source = render_clip(fps_in, seconds, size=size)  # [N, H, W, 3]
    truth = render_clip(30, seconds, size=size)
    rates = FrameRates.of(fps_in, 30)
    # only the frames that really are in-betweens (on-frame outputs are exact copies for every method)
    between = torch.tensor([rates.source_position(k).denominator != 1 for k in range(len(truth))])
    results = {}
    for method in ("dis_flow", "blend"):
        out = torch.cat(list(retime(source.split(4), fps_in, 30, get_interpolator(method))))
        assert out.shape == truth.shape
        results[method] = psnr(out[between], truth[between])
    print(f"{fps_in}->30 PSNR of in-betweens: {results}")
    assert results["dis_flow"] >= 30.0
    assert results["dis_flow"] >= results["blend"] + 3.0


# --- exact counts and timestamps --------------------------------------------------------------

class Lerp:
    """Plain linear mix (no flow), so an output's value tells where on the input timeline it was taken."""

    def pair(self, frame0, frame1):
        return lambda t: torch.lerp(frame0, frame1, t)


def _numbered_frames(count: int) -> torch.Tensor:
    """Frame i is filled with the value i / 1024 -> [count, 2, 2, 3]."""
    return (torch.arange(count, dtype=torch.float64) / 1024).view(-1, 1, 1, 1).expand(count, 2, 2, 3).clone()


@pytest.mark.parametrize("fps_in,fps_out", [(16, 30), (24, 30), (30, 24), (16, 16), ("24000/1001", 30), (16, 60)])
@pytest.mark.parametrize("count", [1, 2, 17, 81])
def test_exact_frame_count_and_timestamps(fps_in, fps_out, count):
    rates = FrameRates.of(fps_in, fps_out)
    out = torch.cat(list(retime(_numbered_frames(count).split(5), fps_in, fps_out, Lerp())))
    expected = math.floor((count - 1) * Fraction(fps_out) / Fraction(fps_in)) + 1
    assert out.shape[0] == rates.output_count(count) == expected
    # output k is taken at input position k * fps_in / fps_out (in frames), i.e. at time k / fps_out
    positions = torch.tensor([float(k * Fraction(fps_in) / Fraction(fps_out)) for k in range(expected)],
                             dtype=torch.float64)
    assert torch.allclose(out[:, 0, 0, 0] * 1024, positions, atol=1e-9)


def test_documented_counts():
    assert FrameRates.of(16, 30).output_count(81) == 151  # 5 s at 16 fps -> 5 s at 30 fps
    assert FrameRates.of(24, 30).output_count(121) == 151
    assert FrameRates.of(16, 30).output_count(1921) == 3601  # 2 minutes
    assert FrameRates.of(16, 30).output_count(0) == 0


def test_chunking_does_not_change_the_output():
    frames = torch.rand(11, 8, 8, 3)
    whole = torch.cat(list(retime([frames], 16, 30, Lerp())))
    for size in (1, 3, 4):
        assert torch.equal(torch.cat(list(retime(frames.split(size), 16, 30, Lerp()))), whole)


@needs_opencv
def test_on_frame_outputs_are_the_input_frames_unchanged():
    frames = torch.rand(9, 16, 16, 3)
    out = torch.cat(list(retime(frames.split(2), 15, 30, get_interpolator("dis_flow"))))
    assert torch.equal(out[::2], frames)


# --- streaming: bounded memory, lazy pulling ---------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 3])
def test_retimer_holds_one_input_chunk_and_pulls_lazily(chunk):
    count, fps_in, fps_out = 20, 16, 30
    rates = FrameRates.of(fps_in, fps_out)
    alive, pulled = [], [0]

    def source():
        for start in range(0, count, chunk):
            n = min(chunk, count - start)
            pulled[0] += n
            frames = torch.rand(n, 8, 8, 3)
            alive.append(weakref.ref(frames))
            yield frames

    produced = 0
    for out in retime(source(), fps_in, fps_out, Lerp()):
        produced += out.shape[0]
        gc.collect()
        assert sum(ref() is not None for ref in alive) <= 1  # earlier chunks were freed
        last_needed = math.ceil(rates.source_position(produced - 1))  # input frame the last output needed
        assert pulled[0] <= last_needed + chunk  # nothing read ahead beyond the current chunk
        del out
    assert produced == rates.output_count(count)


# --- errors -----------------------------------------------------------------------------------

def test_bad_inputs_have_clear_errors():
    with pytest.raises(ValueError, match=r"float frames \[t, H, W, 3\]"):
        list(retime([torch.zeros(2, 8, 8, 3, dtype=torch.uint8)], 16, 30, Lerp()))
    with pytest.raises(ValueError, match="frame size changed"):
        list(retime([torch.rand(2, 8, 8, 3), torch.rand(2, 8, 10, 3)], 16, 30, Lerp()))
    with pytest.raises(ValueError, match="fps must be positive"):
        frame_rate_converter(0, 30, "blend")
    with pytest.raises(ValueError, match="unknown frame interpolation method 'film'; use one of blend, dis_flow"):
        get_interpolator("film")
    with pytest.raises(ValueError, match="'rife': RIFE weights are not supported yet; use 'dis_flow'"):
        get_interpolator("rife")


@needs_opencv
def test_bad_flow_settings_have_clear_errors():
    with pytest.raises(ValueError, match="unknown DIS flow preset 'slow'"):
        get_interpolator("dis_flow", preset="slow")
    with pytest.raises(ValueError, match="too small for DIS optical flow .* use the method 'blend'"):
        list(retime([torch.rand(2, 6, 6, 3)], 16, 30, get_interpolator("dis_flow")))


def test_missing_opencv_names_the_install_command():
    code = (
        "import sys\n"
        "sys.modules['cv2'] = None\n"
        "from kinema.core.interp import get_interpolator\n"
        "get_interpolator('blend')\n"
        "try:\n"
        "    get_interpolator('dis_flow')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "needs OpenCV" in done.stdout and "pip install opencv-python-headless" in done.stdout


@pytest.mark.gpu
@needs_opencv
def test_cuda_frames_stay_on_the_gpu_and_match_the_cpu():
    frames = render_clip(16, 0.25, size=64)  # [5, 64, 64, 3]
    on_cpu = torch.cat(list(retime(frames.split(2), 16, 30, get_interpolator("dis_flow"))))
    on_gpu = torch.cat(list(retime(frames.cuda().split(2), 16, 30, get_interpolator("dis_flow"))))
    assert on_gpu.device.type == "cuda"
    # the flow is computed on the CPU either way (from the same uint8 luma); warps differ by float rounding
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)
