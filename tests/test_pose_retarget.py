"""Retargeting on synthetic skeletons whose bone lengths and angles are known in closed form."""
from __future__ import annotations

import numpy as np
import pytest

from kinema.core.pose.retarget import BONES, RetargetError, RetargetSettings, calibrate, retarget
from kinema.core.pose.synthetic import REST_ANGLES, bone_lengths, skeleton
from kinema.core.pose.types import BODY, LEFT, RIGHT, PoseSequence

FRAMES = 24
NECK = BODY["Neck"]


_lengths = bone_lengths  # symmetric bone lengths in pixels; `arm` / `leg` change the proportions
_skeleton = skeleton


def _hands_at(body: np.ndarray, size: float) -> np.ndarray:
    """Two 21-point hands: a fan of points around each wrist."""
    hands = np.zeros((2, 21, 3), np.float32)
    fan = np.stack([np.cos(np.linspace(0, np.pi, 21)), np.sin(np.linspace(0, np.pi, 21))], axis=-1) * size
    for side, wrist in ((LEFT, BODY["LWrist"]), (RIGHT, BODY["RWrist"])):
        hands[side, :, :2] = body[wrist, :2] + fan
        hands[side, :, 2] = 1.0
    return hands


def _sequence(bodies, width=1000, height=1000, hand_size=20.0) -> PoseSequence:
    bodies = np.stack(bodies)
    hands = np.stack([_hands_at(b, hand_size) for b in bodies])
    return PoseSequence(bodies, hands, np.zeros((len(bodies), 70, 3), np.float32), width, height, fps=30.0)


def _driving(rng, lengths: dict, frames: int = FRAMES) -> PoseSequence:
    bodies = []
    for t in range(frames):
        angles = {bone: rest + (rng.uniform(-40, 40) if t else 0.0) for bone, rest in REST_ANGLES.items()}
        neck = (300 + 4 * t, 200 + 2 * np.sin(t))
        bodies.append(_skeleton(neck, lengths, angles))
    return _sequence(bodies, width=640, height=720, hand_size=15.0)


def _angle(points, bone) -> float:
    d = points[bone[1], :2] - points[bone[0], :2]
    return np.degrees(np.arctan2(d[1], d[0]))


@pytest.fixture
def case():
    rng = np.random.default_rng(7)
    driving = _driving(rng, _lengths(1.0))
    reference_lengths = _lengths(1.6, arm=1.25, leg=0.8)  # bigger, longer arms, shorter legs
    reference = _sequence([_skeleton((500, 300), reference_lengths, REST_ANGLES)], width=1000, height=1400)
    return driving, reference, reference_lengths


def test_bone_lengths_are_the_references_and_angles_the_drivers(case):
    driving, reference, reference_lengths = case
    moved = retarget(driving, reference)
    assert (moved.width, moved.height) == (reference.width, reference.height)
    for t in range(FRAMES):
        for bone in BONES:
            length = np.linalg.norm(moved.body[t, bone[1], :2] - moved.body[t, bone[0], :2])
            assert length == pytest.approx(reference_lengths[bone], rel=0.01), (t, bone)
            turn = (_angle(moved.body[t], bone) - _angle(driving.body[t], bone) + 180) % 360 - 180
            assert abs(turn) < 0.5, (t, bone)


def test_feet_anchor_puts_the_first_frame_on_the_photos_ground(case):
    driving, reference, _ = case
    calibration = calibrate(driving, reference)
    assert calibration.anchor == "feet"  # both are full-body shots
    moved = retarget(driving, reference, RetargetSettings(motion="follow"))
    feet = [BODY[n] for n in ("RAnkle", "LAnkle", "RToe", "LToe")]
    hips = [BODY["RHip"], BODY["LHip"]]
    assert moved.body[0, feet, 1].max() == pytest.approx(reference.body[0, feet, 1].max(), abs=1e-3)
    assert moved.body[0, hips, 0].mean() == pytest.approx(reference.body[0, hips, 0].mean(), abs=1e-3)


def test_neck_anchor_and_scaled_trajectory(case):
    driving, reference, _ = case
    calibration = calibrate(driving, reference, RetargetSettings(anchor="neck"))
    moved = retarget(driving, reference, RetargetSettings(anchor="neck", motion="follow"))
    np.testing.assert_allclose(moved.body[0, NECK, :2], reference.body[0, NECK, :2], atol=1e-3)
    # Later neck movement = driving movement times the overall size ratio.
    expected = reference.body[0, NECK, :2] + (driving.body[:, NECK, :2] - driving.body[0, NECK, :2]) * calibration.scale
    np.testing.assert_allclose(moved.body[:, NECK, :2], expected, atol=1e-3)


def test_uniform_scale_gives_the_similar_skeleton():
    """A reference that is frame 0 scaled by k about a point: every frame is the driver scaled by k."""
    driving = _driving(np.random.default_rng(3), _lengths(1.0))
    k, shift = 1.7, np.array([50.0, -20.0])
    ref_body = driving.body[0].copy()
    ref_body[:, :2] = ref_body[:, :2] * k + shift
    reference = _sequence([ref_body], width=1200, height=1400)
    moved = retarget(driving, reference, RetargetSettings(anchor="neck", motion="follow"))
    np.testing.assert_allclose(moved.body[..., :2], driving.body[..., :2] * k + shift, atol=1e-2)
    # Hands follow their wrist, scaled by the forearm's ratio (k here).
    np.testing.assert_allclose(moved.hands[..., :2], driving.hands[..., :2] * k + shift, atol=1e-2)


def test_foreshortening_in_the_video_is_kept(case):
    driving, reference, reference_lengths = case
    body = driving.body.copy()
    forearm = (6, 7)  # left elbow -> left wrist shrinks to 50 % in frame 5 (arm pointing at the camera)
    body[5, 7, :2] = body[5, 6, :2] + 0.5 * (body[5, 7, :2] - body[5, 6, :2])
    moved = retarget(driving.replace(body=body), reference)
    length = np.linalg.norm(moved.body[5, 7, :2] - moved.body[5, 6, :2])
    assert length == pytest.approx(0.5 * reference_lengths[forearm], rel=0.01)


def test_symmetric_takes_the_longer_side_and_can_be_turned_off(case):
    driving, reference, reference_lengths = case
    ref_body = reference.body.copy()
    ref_body[0, 7, :2] = ref_body[0, 6, :2] + 0.8 * (ref_body[0, 7, :2] - ref_body[0, 6, :2])  # left forearm 80 %
    short = reference.replace(body=ref_body)
    both = retarget(driving, short).body
    plain = retarget(driving, short, RetargetSettings(symmetric=False)).body
    left = lambda b: np.linalg.norm(b[0, 7, :2] - b[0, 6, :2])  # noqa: E731
    assert left(both) == pytest.approx(reference_lengths[(6, 7)], rel=0.01)
    assert left(plain) == pytest.approx(0.8 * reference_lengths[(6, 7)], rel=0.01)


def test_joints_the_photo_does_not_show_are_left_out(case):
    driving, reference, _ = case
    ref_body = reference.body.copy()
    legs = [BODY[n] for n in ("RKnee", "LKnee", "RAnkle", "LAnkle", "RToe", "LToe")]
    ref_body[0, legs] = 0.0  # a half-body photo
    half = reference.replace(body=ref_body)
    moved = retarget(driving, half)
    assert calibrate(driving, half).anchor == "neck"
    assert (moved.body[:, legs, 2] == 0).all()
    assert (moved.body[:, [BODY["RHip"], BODY["LHip"]], 2] > 0).all()
    kept = retarget(driving, half, RetargetSettings(reference_joints_only=False))
    assert (kept.body[:, legs, 2] > 0).all()
    one_arm = ref_body.copy()
    one_arm[0, BODY["LWrist"]] = 0.0  # hidden on one side only: the other side vouches for it
    assert (retarget(driving, half.replace(body=one_arm)).body[:, BODY["LWrist"], 2] > 0).all()


def test_missing_driving_joint_drops_its_chain(case):
    driving, reference, _ = case
    body = driving.body.copy()
    body[4, BODY["RElbow"]] = 0.0
    moved = retarget(driving.replace(body=body), reference)
    assert moved.body[4, BODY["RElbow"], 2] == 0 and moved.body[4, BODY["RWrist"], 2] == 0
    assert (moved.hands[4, RIGHT, :, 2] == 0).all()  # the hand has no wrist to follow
    assert (moved.hands[4, LEFT, :, 2] > 0).all()


def test_errors_name_the_problem(case):
    driving, reference, _ = case
    no_neck = reference.body.copy()
    no_neck[0, NECK] = 0.0
    with pytest.raises(RetargetError, match="no neck"):
        retarget(driving, reference.replace(body=no_neck))
    no_feet = reference.body.copy()
    no_feet[0, [BODY[n] for n in ("RAnkle", "LAnkle", "RToe", "LToe")]] = 0.0
    with pytest.raises(RetargetError, match="anchor 'feet' needs ankles"):
        retarget(driving, reference.replace(body=no_feet), RetargetSettings(anchor="feet"))
    with pytest.raises(RetargetError, match="share no bone"):
        retarget(driving, reference.replace(body=np.zeros_like(reference.body)))
    with pytest.raises(ValueError, match="unknown anchor"):
        RetargetSettings(anchor="hips")
