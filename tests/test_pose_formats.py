"""PoseSequence <-> OpenPose JSON and ComfyUI POSE_KEYPOINT, against hand-written frames."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kinema.core.pose.formats import from_openpose_json, from_pose_keypoint, save_openpose_json, to_pose_keypoint
from kinema.core.pose.types import BODY, LEFT, RIGHT, PoseFormatError, PoseSequence

W, H = 640, 480


def _coco18(seed: int) -> list:
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.uniform(10, 400, (18, 2)), np.ones((18, 1))], axis=1)
    points[16] = 0.0  # REar missing, written 0,0,0 as OpenPose does
    return [round(float(v), 2) for v in points.reshape(-1)]


def _frame(seed: int) -> dict:
    rng = np.random.default_rng(seed + 100)
    return {"people": [{
        "pose_keypoints_2d": _coco18(seed),
        "face_keypoints_2d": [round(float(v), 2) for v in np.c_[rng.uniform(100, 200, (70, 2)), np.ones(70)].ravel()],
        "hand_left_keypoints_2d": [round(float(v), 2) for v in np.c_[rng.uniform(50, 90, (21, 2)), np.ones(21)].ravel()],
        "hand_right_keypoints_2d": [],
    }]}


def test_openpose_json_folder_reads_pixels_in_order(tmp_path):
    frames = [_frame(i) for i in range(3)]
    for i, frame in enumerate(frames):
        (tmp_path / f"clip_{i:012d}_keypoints.json").write_text(json.dumps(frame))
    pose = from_openpose_json(tmp_path, W, H)
    assert (pose.frame_count, pose.width, pose.height) == (3, W, H)
    for i, frame in enumerate(frames):
        body = np.asarray(frame["people"][0]["pose_keypoints_2d"], np.float32).reshape(18, 3)
        np.testing.assert_allclose(pose.body[i, :18], body)
        assert (pose.body[i, 18:] == 0).all()  # COCO-18 has no toes
        np.testing.assert_allclose(pose.hands[i, LEFT].ravel(), frame["people"][0]["hand_left_keypoints_2d"], atol=1e-4)
        assert (pose.hands[i, RIGHT] == 0).all()
    assert pose.body[0, BODY["REar"], 2] == 0


def test_body25_maps_to_coco18_and_toes():
    body25 = np.zeros((25, 3))
    body25[:, 0] = np.arange(25) * 10 + 5  # x encodes the BODY_25 index
    body25[:, 1] = 50
    body25[:, 2] = 0.9
    body25[23] = 0  # right small toe missing: the right toe is the big toe alone
    pose = from_openpose_json({"people": [{"pose_keypoints_2d": body25.ravel().tolist()}]}, W, H)
    x = pose.body[0, :, 0]
    assert x[BODY["Nose"]] == 5 and x[BODY["RHip"]] == 95 and x[BODY["LEar"]] == 185  # MidHip (8) skipped
    assert x[BODY["LToe"]] == pytest.approx((195 + 205) / 2)  # mean of big (19) and small (20) toe
    assert x[BODY["RToe"]] == pytest.approx(225)  # big toe 22 only


def test_pose_keypoint_round_trip_pixels_and_normalized():
    pose = from_openpose_json([_frame(0), _frame(1)], W, H)
    for normalized in (False, True):
        value = to_pose_keypoint(pose, normalized=normalized)
        assert value[0]["canvas_width"] == W and value[0]["canvas_height"] == H
        body = np.asarray(value[0]["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
        assert set(np.unique(body[:, 2])) <= {0.0, 1.0}  # consumers drop any confidence below 1.0
        assert (np.abs(body[:, :2]).max() <= 1.0) == normalized
        back = from_pose_keypoint(value)  # the convention is detected
        np.testing.assert_allclose(back.body[..., :2], pose.body[..., :2], atol=2e-3 if normalized else 1e-3)
        np.testing.assert_allclose(back.face[..., :2], pose.face[..., :2], atol=2e-3 if normalized else 1e-3)
        np.testing.assert_array_equal(back.body[..., 2] > 0, pose.body[..., 2] > 0)


def test_dwpose_face_68_and_nested_or_none_entries():
    face68 = np.c_[np.full((68, 2), 0.5), np.ones(68)]
    value = [{"people": [{"pose_keypoints_2d": [[0.5, 0.2, 1.0]] + [None] * 17, "face_keypoints_2d": face68.ravel().tolist(),
                          "hand_left_keypoints_2d": None, "hand_right_keypoints_2d": None}],
              "canvas_width": 200, "canvas_height": 100}]
    pose = from_pose_keypoint(value)
    np.testing.assert_allclose(pose.body[0, 0], [100, 20, 1])
    assert (pose.body[0, 1:, 2] == 0).all()
    assert (pose.face[0, :68, 2] == 1).all() and (pose.face[0, 68:, 2] == 0).all()


def test_point_at_the_origin_is_missing():
    body = np.zeros((18, 3))
    body[0] = (0, 0, 1.0)  # a writer that kept a confidence on an undetected point
    body[1] = (20, 30, 1.0)
    pose = from_openpose_json({"people": [{"pose_keypoints_2d": body.ravel().tolist()}]}, W, H)
    assert pose.body[0, 0, 2] == 0 and pose.body[0, 1, 2] == 1


def test_largest_person_is_the_driver():
    small = np.zeros((18, 3))
    small[[0, 1], :] = [(10, 10, 1), (12, 14, 1)]
    big = np.zeros((18, 3))
    big[[0, 1, 10], :] = [(100, 100, 1), (110, 150, 1), (90, 400, 1)]
    frame = {"people": [{"pose_keypoints_2d": small.ravel().tolist()}, {"pose_keypoints_2d": big.ravel().tolist()}]}
    assert from_openpose_json(frame, W, H).body[0, 0, 0] == 100


def test_saved_openpose_json_keeps_confidences_reads_back_unaided_and_never_overwrites(tmp_path):
    pose = from_openpose_json([_frame(0), _frame(1)], W, H)
    body = pose.body.copy()
    body[0, 2] = (30, 40, 0.42)
    body[:, BODY["LToe"]] = (50, 60, 0.9)  # COCO-18 has no toes: not written
    pose = pose.replace(body=body)
    path = tmp_path / "pose.json"
    save_openpose_json(pose, path)
    frames = json.loads(path.read_text())
    assert len(frames) == 2 and frames[0]["canvas_width"] == W and frames[0]["canvas_height"] == H
    person = frames[0]["people"][0]
    assert len(person["pose_keypoints_2d"]) == 54 and person["pose_keypoints_2d"][6:9] == [30, 40, 0.42]
    assert len(person["face_keypoints_2d"]) == 210 and len(person["hand_left_keypoints_2d"]) == 63
    back = from_openpose_json(path)  # the picture size comes from the file
    assert (back.width, back.height, back.frame_count) == (W, H, 2)
    np.testing.assert_allclose(back.body[:, :18], pose.body[:, :18], atol=1e-5)
    assert (back.body[:, 18:] == 0).all()
    np.testing.assert_allclose(back.hands, pose.hands, atol=1e-5)
    np.testing.assert_allclose(back.face, pose.face, atol=1e-5)
    written = path.read_bytes()
    with pytest.raises(FileExistsError, match="never written over a file"):
        save_openpose_json(pose.frames([0]), path)
    assert path.read_bytes() == written and sorted(p.name for p in tmp_path.iterdir()) == ["pose.json"]


def test_bad_inputs_say_what_was_expected(tmp_path):
    with pytest.raises(PoseFormatError, match="18 or 25 .* triplets, got 30 numbers"):
        from_openpose_json({"people": [{"pose_keypoints_2d": [1.0] * 30}]}, W, H)
    with pytest.raises(PoseFormatError, match="pass width and height"):
        from_openpose_json({"people": []})
    with pytest.raises(PoseFormatError, match="same canvas_width and canvas_height"):
        from_pose_keypoint([{"people": [], "canvas_width": 10, "canvas_height": 10},
                            {"people": [], "canvas_width": 20, "canvas_height": 10}])
    with pytest.raises(PoseFormatError, match="holds no .json files"):
        from_openpose_json(tmp_path, W, H)
    with pytest.raises(FileNotFoundError, match="no such OpenPose JSON"):
        from_openpose_json(tmp_path / "missing.json", W, H)
    with pytest.raises(PoseFormatError, match=r"body must have shape \[frames, 20, 3\]"):
        PoseSequence(np.zeros((2, 18, 3)), np.zeros((2, 2, 21, 3)), np.zeros((2, 70, 3)), W, H)
    with pytest.raises(PoseFormatError, match="NaN"):
        PoseSequence(np.full((1, 20, 3), np.nan), np.zeros((1, 2, 21, 3)), np.zeros((1, 70, 3)), W, H)
