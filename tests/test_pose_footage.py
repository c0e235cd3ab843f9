"""Every footage case (core/pose/footage.py) on a synthetic dancer whose bones and angles are known.

The dancer is filmed by each case's virtual camera (push-ins, crops, pans, mirror, a second
person, leaving and coming back, small and far away); points leaving the picture are missing, as a
detector would report them. Retargeted onto synthetic photos, every drawn bone must have the
photo's length (1 %) and the filmed angle (0.5 degrees), and the three fit figures must hold.
"""
from __future__ import annotations

import numpy as np
import pytest

from kinema.core.pose import footage
from kinema.core.pose.fit_checks import measure_fit
from kinema.core.pose.people import Person, choose_person, sequence_of
from kinema.core.pose.retarget import BONES, RetargetSettings, retarget_with_report
from kinema.core.pose.smoothing import CleanSettings, clean
from kinema.core.pose.synthetic import bone_lengths, dancer, photo
from kinema.core.pose.types import BODY

SOURCE = (1280, 720)
CANVAS = (640, 360)
FRAMES = 60
FPS = 15.0
LEGS = [BODY[n] for n in ("RKnee", "LKnee", "RAnkle", "LAnkle", "RToe", "LToe")]


@pytest.fixture(scope="module")
def source():
    # The presenter of the shared clip stands about here; the cases' cameras are framed on that spot.
    pose, _ = dancer(FRAMES, fps=FPS, lengths=bone_lengths(1.3), width=SOURCE[0], height=SOURCE[1],
                     neck=(0.63 * SOURCE[0], 0.42 * SOURCE[1]), face_size=48.0, hand_size=20.0)
    return pose


PHOTO_LENGTHS = bone_lengths(1.6, arm=1.25, leg=0.8)  # a bigger person, longer arms, shorter legs


def _photos():
    full = photo(PHOTO_LENGTHS, 1000, 1400, (500, 300), face_size=70.0)
    body = full.body.copy()
    body[0, LEGS] = 0.0
    return {"full_body": full, "half_body": full.replace(body=body)}


def _angle(points: np.ndarray, bone) -> np.ndarray:
    d = points[..., bone[1], :2] - points[..., bone[0], :2]
    return np.degrees(np.arctan2(d[..., 1], d[..., 0]))


def _case_pose(source, case):
    people = footage.case_people(source, case, CANVAS)
    if len(people) == 1:
        return people[0], None
    frames = [[Person(p.body[t], p.hands[t], p.face[t]) for p in people] for t in range(source.frame_count)]
    picked, choice = choose_person(frames, *CANVAS, fps=FPS)
    return sequence_of(picked, *CANVAS, fps=FPS), (people, picked, choice)


@pytest.mark.parametrize("photo_kind", ["full_body", "half_body"])
@pytest.mark.parametrize("name", footage.CASE_NAMES)
def test_footage_case_keeps_bones_angles_face_and_canvas(source, name, photo_kind):
    case = footage.case_named(name)
    reference = _photos()[photo_kind]
    driving, _ = _case_pose(source, case)
    moved, report = retarget_with_report(driving, reference)
    figures = measure_fit(driving, moved, reference)
    assert figures.face_frames > 0.3 * FRAMES, figures  # the case shows the face often enough to judge
    assert figures.face_share >= 0.95, (name, figures.line())
    assert figures.long_bones == 0 and figures.outside_points == 0, (name, figures.line())
    drawn_bones = 0
    for bone in BONES:
        both = (moved.body[:, bone[0], 2] >= 0.3) & (moved.body[:, bone[1], 2] >= 0.3)  # [N]
        if not both.any():
            continue
        drawn_bones += int(both.sum())
        lengths = np.linalg.norm(moved.body[both, bone[1], :2] - moved.body[both, bone[0], :2], axis=-1)
        np.testing.assert_allclose(lengths, PHOTO_LENGTHS[bone], rtol=0.01, err_msg=f"{name} {bone}")
        turn = (_angle(moved.body[both], bone) - _angle(driving.body[both], bone) + 180) % 360 - 180
        assert np.abs(turn).max() < 0.5, (name, bone, np.abs(turn).max())
    assert drawn_bones > FRAMES  # something was drawn and checked
    if photo_kind == "half_body":
        assert (moved.body[:, LEGS, 2] == 0).all()


def test_push_in_changes_the_zoom_smoothly_and_never_the_bones(source):
    case = footage.case_named("push_in_closeup")
    driving, _ = _case_pose(source, case)
    reference = _photos()["half_body"]
    _, report = retarget_with_report(driving, reference)
    expected = case.camera.zoom(1.0) / case.camera.zoom(0.0)  # the camera's own push-in
    assert report.zoom_range[1] / report.zoom_range[0] == pytest.approx(expected, rel=0.01)


def test_second_person_is_not_followed_unless_asked(source):
    case = footage.case_named("second_person")
    people = footage.case_people(source, case, CANVAS)
    frames = [[Person(p.body[t], p.hands[t], p.face[t]) for p in people[::-1]] for t in range(FRAMES)]  # order shuffled
    picked, choice = choose_person(frames, *CANVAS, fps=FPS)
    np.testing.assert_array_equal(sequence_of(picked, *CANVAS).body, people[0].body)
    assert choice.people_seen == 2 and choice.frames_with_others == FRAMES
    other, _ = choose_person(frames, *CANVAS, fps=FPS, person="1")
    np.testing.assert_array_equal(sequence_of(other, *CANVAS).body, people[1].body)
    with pytest.raises(ValueError, match="only 2 people"):
        choose_person(frames, *CANVAS, fps=FPS, person=2)
    with pytest.raises(ValueError, match="'auto' or a number"):
        choose_person(frames, *CANVAS, fps=FPS, person="left")


def test_person_who_leaves_is_not_carried_and_is_found_again(source):
    case = footage.case_named("leaves_and_returns")
    driving = footage.case_people(source, case, CANVAS)[0]
    absent = ~(driving.body[..., 2] > 0).any(axis=1)  # [N]
    assert absent.sum() >= 8  # the camera really looks away for a while
    frames = [[Person(driving.body[t], driving.hands[t], driving.face[t])] if not absent[t] else []
              for t in range(FRAMES)]
    picked, choice = choose_person(frames, *CANVAS, fps=FPS)
    assert choice.frames_with_person == int((~absent).sum())  # both visits are the same person
    assert choice.people_seen == 1 and choice.returns == 1
    moved, _ = retarget_with_report(clean(sequence_of(picked, *CANVAS, fps=FPS)), _photos()["half_body"])
    assert not (moved.body[absent, :, 2] > 0).any() and not (moved.face[absent, :, 2] > 0).any()
    assert not (moved.hands[absent, ..., 2] > 0).any()


def test_short_gaps_are_bridged_long_ones_are_not(source):
    body = source.body.copy()
    wrist = BODY["RWrist"]
    body[10:13, wrist] = 0.0  # 3 frames: bridged
    body[30:45, wrist] = 0.0  # 15 frames: stays missing
    cleaned = clean(source.replace(body=body))
    assert (cleaned.body[10:13, wrist, 2] > 0).all()
    assert (cleaned.body[30:45, wrist, 2] == 0).all()


def test_motion_follow_keeps_the_path_and_sway_drops_a_pan(source):
    case = footage.case_named("pan_limbs_leave")
    driving, _ = _case_pose(source, case)
    reference = _photos()["half_body"]
    neck = BODY["Neck"]
    sway, _ = retarget_with_report(driving, reference)
    seen = sway.body[:, neck, 2] > 0
    # Pinned on the photo's neck: the pan (hundreds of pixels) leaves only the dancer's own sway.
    assert np.abs(sway.body[seen, neck, :2] - reference.body[0, neck, :2]).max() < 0.1 * reference.width
    with pytest.raises(ValueError, match="unknown motion"):
        RetargetSettings(motion="drift")


def test_a_limb_drawn_across_the_picture_is_dropped_before_cleaning(source):
    """A detector that loses the person for a frame draws the forearm to the far side of the picture."""
    body = source.body.copy()
    elbow, wrist = BODY["RElbow"], BODY["RWrist"]
    body[20, wrist, :2] = (5.0, SOURCE[1] - 5.0)  # the opposite corner: several forearms long
    cleaned = clean(source.replace(body=body), CleanSettings(smooth=False, max_gap=0))
    assert cleaned.body[20, wrist, 2] == 0 and (cleaned.hands[20, 1, :, 2] == 0).all()  # hand of the right wrist
    assert cleaned.body[20, elbow, 2] > 0  # the rest of the arm stays
    kept = np.delete(np.arange(FRAMES), 20)
    np.testing.assert_array_equal(cleaned.body[kept], source.body[kept])  # nothing else is touched
    assert clean(source.replace(body=body), CleanSettings(smooth=False, max_gap=0, drop_implausible=False)
                 ).body[20, wrist, 2] > 0


def test_single_detector_jumping_to_someone_else_is_cut_out(source):
    """MediaPipe reports one person per frame; when it jumps to the small second person, those frames go."""
    from kinema.core.pose.people import follow

    main, other = footage.case_people(source, footage.case_named("second_person"), CANVAS)
    jumped = slice(20, 26)
    parts = {name: getattr(main, name).copy() for name in ("body", "hands", "face")}
    for name in parts:
        parts[name][jumped] = getattr(other, name)[jumped]
    followed, choice = follow(main.replace(**parts))
    assert not (followed.body[jumped, :, 2] > 0).any()
    keep = np.r_[0:20, 26:FRAMES]
    np.testing.assert_array_equal(followed.body[keep], main.body[keep])
    assert choice.people_seen == 2 and choice.frames_with_person == FRAMES - 6


def test_node_message_for_a_close_up(source):
    from kinema.core.pose.retarget import describe

    driving, _ = _case_pose(source, footage.case_named("push_in_closeup"))
    moved, report = retarget_with_report(driving, _photos()["half_body"])
    text = describe(driving, moved, report)
    assert text.startswith("upper body only; anchored on neck"), text
    assert "camera zoom" in text and "hands missing in" in text, text
