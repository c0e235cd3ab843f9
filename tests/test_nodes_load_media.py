"""KinemaLoadImage / KinemaLoadVideo read the input folder (checked against PIL and PyAV decoding the
same files) and say what is wrong with a bad file name or file."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

from kinema.core.video import VideoWriter
from kinema.nodes import host
from kinema.nodes.load_media import KinemaLoadImage, KinemaLoadVideo


@pytest.fixture
def input_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "people").mkdir()
    picture = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "people" / "photo.png")
    rgba = Image.fromarray(rng.integers(0, 256, (6, 4, 4), dtype=np.uint8), "RGBA")
    rgba.save(tmp_path / "alpha.png")
    with VideoWriter(tmp_path / "clip.mp4", fps=24) as writer:
        writer.write(torch.from_numpy(rng.integers(0, 256, (7, 16, 32, 3), dtype=np.uint8)))
    (tmp_path / "notes.txt").write_text("not media")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    host.configure(input_dir=tmp_path)
    yield tmp_path
    host.configure()


def test_combos_list_the_input_folder_by_kind(input_folder):
    assert KinemaLoadImage.INPUT_TYPES()["required"]["image"][0] == ["alpha.png", "broken.png", "people/photo.png"]
    assert KinemaLoadVideo.INPUT_TYPES()["required"]["video"][0] == ["clip.mp4"]


def test_load_image_is_the_picture_in_0_1(input_folder):
    image, width, height = KinemaLoadImage().load("people/photo.png")
    expected = np.array(Image.open(input_folder / "people" / "photo.png"))
    assert image.shape == (1, 20, 30, 3) and image.dtype == torch.float32 and (width, height) == (30, 20)
    torch.testing.assert_close(image[0], torch.from_numpy(expected).float() / 255)
    absolute, _, _ = KinemaLoadImage().load(str(input_folder / "alpha.png"))  # absolute paths work standalone
    assert absolute.shape == (1, 6, 4, 3)


def test_load_video_caps_and_steps_like_pyav(input_folder):
    with av.open(str(input_folder / "clip.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    images, fps, count = KinemaLoadVideo().load("clip.mp4", 3, 2)
    assert count == 3 and images.shape == (3, 16, 32, 3) and fps == 12.0
    torch.testing.assert_close(images, torch.from_numpy(np.stack(decoded[0:6:2])).float() / 255)
    assert KinemaLoadVideo().load("clip.mp4", 0, 1)[2] == 7


def test_load_errors_name_the_file_and_the_fix(input_folder):
    with pytest.raises(FileNotFoundError, match=r"input file 'gone.png' not found .* put it in the input folder"):
        KinemaLoadImage().load("gone.png")
    with pytest.raises(ValueError, match="broken.png is not a readable picture .* use a png, jpg"):
        KinemaLoadImage().load("broken.png")
    with pytest.raises(ValueError, match="notes.txt is not a readable video .* use an mp4"):
        KinemaLoadVideo().load("notes.txt", 0, 1)


def test_changed_file_changes_the_fingerprint(input_folder):
    before = KinemaLoadImage.IS_CHANGED("alpha.png")
    Image.fromarray(np.zeros((6, 4, 3), np.uint8)).save(input_folder / "alpha.png")
    assert KinemaLoadImage.IS_CHANGED("alpha.png") != before
