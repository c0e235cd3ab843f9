"""The pose nodes end to end on a POSE_KEYPOINT source, and their behaviour without MediaPipe."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from kinema.core.pose import extract_mediapipe
from kinema.core.pose.formats import from_openpose_json
from kinema.core.pose.types import BODY, PoseSequence
from kinema.nodes import host
from kinema.nodes.pose import NODE_CLASS_MAPPINGS, POSE, KinemaPoseExtract, KinemaPoseRender, KinemaPoseRetarget

W, H = 200, 160


def _keypoints(frames: int, shift: float) -> list:
    """A DWPose-style POSE_KEYPOINT (pixels, confidences 1.0) of an upper body waving its right arm."""
    out = []
    for t in range(frames):
        body = np.zeros((18, 3))
        points = {"Nose": (100, 30), "Neck": (100, 60), "RShoulder": (80, 60), "LShoulder": (120, 60),
                  "RElbow": (70, 90 - 3 * t), "RWrist": (60, 115 - 6 * t), "LElbow": (130, 90), "LWrist": (135, 120),
                  "REye": (95, 25), "LEye": (105, 25)}
        for name, (x, y) in points.items():
            body[BODY[name]] = (x * shift, y * shift, 1.0)
        face = np.zeros((70, 3))
        face[:68] = np.c_[np.linspace(88, 112, 68) * shift, np.linspace(15, 45, 68) * shift, np.ones(68)]
        out.append({"people": [{"pose_keypoints_2d": body.ravel().tolist(), "face_keypoints_2d": face.ravel().tolist(),
                                "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None}],
                    "canvas_width": W, "canvas_height": H})
    return out


def test_extract_retarget_render_from_pose_keypoint():
    extract = KinemaPoseExtract()
    driving, info = extract.extract(1, 960, True, 5, pose_keypoint=_keypoints(6, 1.0))
    reference, _ = extract.extract(1, 960, False, 5, pose_keypoint=_keypoints(1, 1.2))
    assert isinstance(driving, PoseSequence) and driving.frame_count == 6 and "6 frames" in info
    moved, info = KinemaPoseRetarget().retarget(driving, reference, "auto", True, True)
    assert moved.retargeted and (moved.width, moved.height) == (W, H)
    # The test person has no legs and no hands: the node says so.
    assert info.startswith("upper body only; anchored on neck (100%)"), info
    assert "hands missing in 100% of frames" in info and "face drawn in 100% of frames" in info, info
    render = KinemaPoseRender()
    images, keypoints = render.render(moved, "wan_animate", 0, 0, True, True, True)
    assert images.shape == (6, H, W, 3) and images.dtype == torch.float32 and 0 < images.max() <= 1
    assert len(keypoints) == 6 and keypoints[0]["canvas_width"] == W
    background = torch.full((1, 80, 100, 3), 0.5)
    images, _ = render.render(driving, "openpose", 100, 80, True, True, False, background=background)
    assert images.shape == (6, 80, 100, 3) and images[0, 0, 0, 0] == pytest.approx(0.5, abs=1 / 255)
    frames = torch.rand(6, H, W, 3)
    crops, _ = render.render(driving, "face_crops", 0, 0, True, True, True, background=frames)
    assert crops.shape == (6, 512, 512, 3)


def test_extract_follows_the_main_person_or_the_one_asked_for():
    main, small = _keypoints(6, 1.0), _keypoints(6, 0.4)  # the small copy sits in the top-left corner
    both = [{**frame, "people": extra["people"] + frame["people"]} for frame, extra in zip(main, small)]
    extract = KinemaPoseExtract()
    chosen, info = extract.extract(1, 960, False, 5, pose_keypoint=both)
    alone, _ = extract.extract(1, 960, False, 5, pose_keypoint=main)
    np.testing.assert_allclose(chosen.body, alone.body)
    assert "2 people tracked, following the main person" in info, info
    other, info = extract.extract(1, 960, False, 5, pose_keypoint=both, person="1")
    np.testing.assert_allclose(other.body, extract.extract(1, 960, False, 5, pose_keypoint=small)[0].body)
    assert "following person 1" in info
    with pytest.raises(ValueError, match="only 2 people"):
        extract.extract(1, 960, False, 5, pose_keypoint=both, person="5")


def test_extract_saves_the_pose_as_openpose_json_in_the_output_folder(tmp_path):
    host.configure(output=tmp_path)
    try:
        extract = KinemaPoseExtract()
        pose, info = extract.extract(1, 960, False, 5, pose_keypoint=_keypoints(3, 1.0), save_openpose_json=True)
        saved = tmp_path / "kinema" / "pose_00001_.json"
        assert info.endswith("saved as kinema/pose_00001_.json") and saved.is_file()
        back = from_openpose_json(str(saved))
        assert (back.width, back.height, back.frame_count) == (W, H, 3)
        np.testing.assert_allclose(back.body[:, :18], pose.body[:, :18], atol=1e-4)
        written = saved.read_bytes()
        _, info = extract.extract(1, 960, False, 5, pose_keypoint=_keypoints(2, 1.0), save_openpose_json=True)
        assert info.endswith("pose_00002_.json") and saved.read_bytes() == written  # a new file each time
        extract.extract(1, 960, False, 5, pose_keypoint=_keypoints(2, 1.0))
        assert len(list((tmp_path / "kinema").iterdir())) == 2  # off by default
    finally:
        host.configure()
    assert "OpenPose JSON" in KinemaPoseExtract.INPUT_TYPES()["optional"]["save_openpose_json"][1]["tooltip"]


def test_node_inputs_and_source_errors():
    assert set(NODE_CLASS_MAPPINGS) == {"KinemaPoseExtract", "KinemaPoseRetarget", "KinemaPoseRender"}
    assert KinemaPoseRetarget.INPUT_TYPES()["required"]["driving_pose"][0] == POSE == KinemaPoseExtract.RETURN_TYPES[0]
    with pytest.raises(ValueError, match="exactly one source"):
        KinemaPoseExtract().extract(1, 960, True, 5)
    with pytest.raises(ValueError, match="exactly one source"):
        KinemaPoseExtract().extract(1, 960, True, 5, video_path="x.mp4", pose_keypoint=_keypoints(1, 1.0))
    driving, _ = KinemaPoseExtract().extract(1, 960, True, 5, pose_keypoint=_keypoints(2, 1.0))
    with pytest.raises(ValueError, match="face_crops needs the driving frames"):
        KinemaPoseRender().render(driving, "face_crops", 0, 0, True, True, True)


def test_python_313_message(monkeypatch):
    monkeypatch.setattr(extract_mediapipe, "_python_version", lambda: (3, 13, 1))
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if not installed
    with pytest.raises(extract_mediapipe.MediaPipeUnavailable) as error:
        extract_mediapipe.require_mediapipe()
    message = str(error.value)
    assert "no wheel for Python 3.13.1" in message and "Python 3.10-3.12" in message
    assert "pip install mediapipe==0.10.14" in message and "POSE_KEYPOINT or OpenPose JSON" in message


WITHOUT_MEDIAPIPE = r"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'mediapipe', 'cv2'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import torch
from kinema.nodes.pose import KinemaPoseExtract, KinemaPoseRender
from kinema.core.pose.types import PoseSequence
import numpy as np
try:
    KinemaPoseExtract().extract(1, 960, True, 5, images=torch.zeros(1, 32, 32, 3))
except ImportError as error:
    print('MESSAGE', error)
body = np.zeros((1, 20, 3)); body[0, 1] = (10, 10, 1); body[0, 2] = (20, 10, 1)
pose = PoseSequence(body, np.zeros((1, 2, 21, 3)), np.zeros((1, 70, 3)), 32, 32)
images, _ = KinemaPoseRender().render(pose, 'openpose', 0, 0, True, True, True)
print('RENDERED', float(images.sum()) > 0)
"""


def test_nodes_work_without_mediapipe_and_opencv():
    out = subprocess.run([sys.executable, "-c", WITHOUT_MEDIAPIPE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "MESSAGE pose extraction needs MediaPipe" in out.stdout
    assert "pip install mediapipe==0.10.14" in out.stdout
    assert "RENDERED True" in out.stdout  # drawing falls back to kornia


def test_wrong_protobuf_is_named_with_its_fix(monkeypatch):
    import types

    import google.protobuf

    monkeypatch.setitem(sys.modules, "mediapipe", types.SimpleNamespace(solutions=object(), __version__="0.10.14"))
    monkeypatch.setattr(google.protobuf, "__version__", "7.36.2")
    with pytest.raises(extract_mediapipe.MediaPipeUnavailable, match=r'needs protobuf 4.x but protobuf 7.36.2 .*'
                                                                     r'pip install "protobuf>=4.25.3,<5"'):
        extract_mediapipe.require_mediapipe()
