"""wildpose.quality: bone-length consistency, reprojection and jitter, on the real walker and on poses built
from it whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose import quality
from wildpose.lift.normalize import focal_from_fov
from wildpose.pipeline import RunOptions, process_video
from wildpose.skeleton import COCO_NAMES, H36M_NAMES, H36M_PARENTS
from wildpose.types import Result

from conftest import dense


@pytest.fixture(scope="module")
def walker(walk_video) -> Result:
    """The shipped pipeline on the first 4 s of the real walking video."""
    result, _ = process_video(walk_video, RunOptions(end=4))
    assert len(result.track_ids) >= 1
    return result


@pytest.fixture(scope="module")
def pose0(walker) -> np.ndarray:
    """(17, 3) float64: the walker's first lifted pose, a real skeleton for the synthetic checks."""
    return walker.poses_3d[walker.track(walker.main_track)][0].astype(np.float64)


def _single(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 17, 3) -> (1, T, 17, 3) and an all-present (1, T) mask."""
    return poses[None], np.ones((1, len(poses)), bool)


# ------------------------------------------------------------------------------------------ on real data

def test_walker_bones_are_consistent_and_plausible(walker):
    p, d = walker.main_track, dense(walker)
    cv = quality.bone_length_cv(d.poses_3d, d.present)
    assert cv.shape == (len(walker.track_ids), 16)
    assert np.isfinite(cv[p]).all()
    summary = quality.bone_cv_summary(cv)
    assert summary["median"][p] < 0.15
    assert summary["worst"][p] < 0.4
    # a lifter that broke into a constant blob would pass the CV checks; real legs are 0.3-0.55 m
    lengths = np.median(quality.bone_lengths(walker.poses_3d[walker.track(p)]), axis=0)
    for child in (H36M_NAMES.index(n) for n in ("right_knee", "right_ankle", "left_knee", "left_ankle")):
        assert 0.3 < lengths[child - 1] < 0.55, (H36M_NAMES[child], lengths[child - 1])


def test_walker_reprojects_onto_its_keypoints(walker):
    p = walker.main_track
    rep = quality.reprojection_error(walker)
    assert rep.pixels.shape == (walker.num_rows,) and rep.translation.shape == (walker.num_rows, 3)
    assert np.isfinite(rep.pixels).all()
    assert rep.median_relative[p] < 0.15
    assert rep.focal_length == pytest.approx(focal_from_fov(tuple(walker.image_size)))
    # the walker is several metres in front of the camera, and walks: the fitted root moves sideways
    t = rep.translation[walker.track(p)]
    assert (t[:, 2] > 2.0).all()
    assert abs(t[-1, 0] - t[0, 0]) > 0.5


def test_walker_jitter(walker):
    p, d = walker.main_track, dense(walker)
    j3 = quality.jitter(d.poses_3d, d.present, walker.timestamps)
    j2 = quality.jitter(d.keypoints_2d[..., :2], d.present, walker.timestamps)
    assert np.isfinite(j3[p]) and j3[p] > 0 and np.isfinite(j2[p]) and j2[p] > 0
    s = quality.summarize(walker)
    # in body heights per s^2 the temporal lifter's output is smoother than the detector's keypoints
    assert s["tracks"]["jitter_3d_rel"][p] < s["tracks"]["jitter_2d_rel"][p]


def test_summarize_on_real_result(walker):
    s = quality.summarize(walker)
    tracks, overall = s["tracks"], s["overall"]
    P = len(walker.track_ids)
    for key in ("bone_cv_median", "bone_cv_worst", "reprojection_px", "reprojection_rel", "jitter_3d",
                "jitter_2d", "frames"):
        assert np.shape(tracks[key]) == (P,), key
    assert tracks["bone_cv"].shape == (P, 16)
    assert all(name in quality.BONE_NAMES for name in tracks["bone_cv_worst_bone"])
    frames = dense(walker).present.sum(1)
    assert (frames == walker.track_lengths).all()
    expected = (tracks["reprojection_px"] * frames).sum() / frames.sum()
    assert overall["reprojection_px"] == pytest.approx(expected)
    assert overall["frames"] == frames.sum() and overall["tracks"] == P
    assert 0.0 <= overall["share_meeting_bone_cv_target"] <= 1.0


# ------------------------------------------------------------------------------------ known by construction

def test_rigid_skeleton_moving_at_constant_velocity(pose0):
    rng = np.random.default_rng(0)
    timestamps = np.cumsum(rng.uniform(0.02, 0.06, 40))  # variable frame rate: true time steps matter
    velocity = np.array([1.3, -0.2, 0.4])
    poses = pose0 + timestamps[:, None, None] * velocity
    cv = quality.bone_length_cv(*_single(poses))
    assert np.abs(cv).max() < 1e-9
    assert quality.jitter(*_single(poses), timestamps)[0] < 1e-9


def test_jitter_of_constant_acceleration_is_its_magnitude(pose0):
    rng = np.random.default_rng(1)
    timestamps = np.cumsum(rng.uniform(0.02, 0.06, 30))
    accel = np.array([0.0, 9.81, 2.0])
    poses = pose0 + 0.5 * (timestamps ** 2)[:, None, None] * accel
    poses_p, present = _single(poses)
    assert quality.jitter(poses_p, present, timestamps)[0] == pytest.approx(np.linalg.norm(accel), rel=1e-6)
    # frames that are absent break the run: only triples of consecutive present frames count
    shaken = poses_p.copy()
    shaken[0, 10] += 0.5
    present[0, 10] = False
    assert quality.jitter(shaken, present, timestamps)[0] == pytest.approx(np.linalg.norm(accel), rel=1e-6)
    present[0, 9] = True
    assert quality.jitter(shaken, np.ones_like(present), timestamps)[0] > 2 * np.linalg.norm(accel)


def test_one_bone_scaled_every_other_frame(pose0):
    T, scale = 20, 1.3
    child = H36M_NAMES.index("right_wrist")  # a leaf: scaling it moves no other joint
    parent = H36M_PARENTS[child]
    poses = np.repeat(pose0[None], T, axis=0)
    poses[1::2, child] = pose0[parent] + scale * (pose0[child] - pose0[parent])
    cv = quality.bone_length_cv(*_single(poses))[0]
    # lengths alternate L, sL: mean L(1+s)/2, population std L(s-1)/2
    assert cv[child - 1] == pytest.approx((scale - 1) / (scale + 1), rel=1e-9)
    others = np.delete(cv, child - 1)
    assert np.abs(others).max() < 1e-9
    summary = quality.bone_cv_summary(cv[None])
    assert summary["worst_bone"][0] == child - 1
    assert quality.BONE_NAMES[child - 1] == "right_elbow-right_wrist"
    assert summary["median"][0] < 1e-9 and summary["meets_target"][0]


def test_absent_frames_do_not_count_in_bone_cv(pose0):
    poses = np.repeat(pose0[None], 10, axis=0)
    poses[3] *= 2.0  # a wild frame, marked absent and filled with NaN as in a Result
    poses[3] = np.nan
    present = np.ones((1, 10), bool)
    present[0, 3] = False
    assert np.abs(quality.bone_length_cv(poses[None], present)).max() < 1e-9
    present[:] = False
    present[0, 0] = True
    assert np.isnan(quality.bone_length_cv(poses[None], present)).all()  # one frame: no variation defined


def _projected_result(pose0: np.ndarray, translations: np.ndarray, image_size=(640, 480),
                      focal: float | None = None) -> Result:
    """A Result whose 2D keypoints are the poses projected through a known pinhole camera."""
    T = len(translations)
    f = focal if focal is not None else focal_from_fov(image_size)
    rng = np.random.default_rng(2)
    # the pose turns a little over time so that every frame is different
    angles = np.linspace(0, 0.6, T)
    rot = np.zeros((T, 3, 3))
    rot[:, 0, 0] = rot[:, 2, 2] = np.cos(angles)
    rot[:, 0, 2], rot[:, 2, 0] = np.sin(angles), -np.sin(angles)
    rot[:, 1, 1] = 1.0
    poses = np.einsum("tij,kj->tki", rot, pose0 - pose0[0])
    uv = quality.project(poses + translations[:, None], f, (image_size[0] / 2, image_size[1] / 2))
    keypoints = np.full((1, T, 17, 3), np.nan)
    h36m, coco = np.array(quality.H36M_TO_COCO).T
    keypoints[0, :, coco, :2] = np.moveaxis(uv[:, h36m], 1, 0)
    keypoints[0, :, coco, 2] = rng.uniform(0.3, 1.0, (len(coco), T))
    # the face points have no 3D counterpart; give them a plausible place above the shoulders
    keypoints[0, :, :5] = keypoints[0, :, 5:7].mean(1, keepdims=True) - np.array([0.0, 15.0, 0.0])
    keypoints[0, :, :5, 2] = 0.5
    return Result.from_dense(keypoints_2d=keypoints, poses_3d=poses[None], track_ids=[1],
                             timestamps=np.arange(T) / 30.0, fps=30.0, image_size=image_size,
                             interpolated=np.zeros((1, T), bool))


def test_reprojection_recovers_a_known_translation(pose0):
    T = 12
    translations = np.stack([np.linspace(-1.5, 1.5, T), np.linspace(0.2, 0.4, T), np.linspace(4.0, 9.0, T)], 1)
    result = _projected_result(pose0, translations)
    rep = quality.reprojection_error(result)
    # Result stores float32: exact up to its rounding (1e-5 px at 300 px)
    assert np.nanmax(rep.pixels) < 1e-3
    assert np.nanmax(rep.relative) < 1e-5
    np.testing.assert_allclose(rep.translation, translations, atol=1e-5)
    # a lens other than the default: the focal length given is used
    result = _projected_result(pose0, translations, focal=1200.0)
    assert np.nanmax(quality.reprojection_error(result, focal_length=1200.0).pixels) < 1e-3
    wrong = quality.reprojection_error(result)  # fitted with the default 60-degree focal: no longer exact
    assert np.nanmedian(wrong.pixels) > 0.1


def test_reprojection_weights_and_refinement(pose0):
    T = 8
    translations = np.tile([0.5, 0.3, 5.0], (T, 1))
    result = _projected_result(pose0, translations)
    left_wrist = COCO_NAMES.index("left_wrist")
    # a wildly wrong keypoint with score 0 is ignored
    result.keypoints_2d[:, left_wrist, :2] += 80.0
    result.keypoints_2d[:, left_wrist, 2] = 0.0
    rep = quality.reprojection_error(result)
    assert np.nanmax(rep.pixels) < 1e-3
    # with noise, the Gauss-Newton steps lower the pixel error of the linear solve (never raise it)
    rng = np.random.default_rng(3)
    h36m, coco = np.array(quality.H36M_TO_COCO).T
    X = result.poses_3d[:, h36m].astype(np.float64)
    uv = result.keypoints_2d[:, coco, :2].astype(np.float64) + rng.normal(0, 3.0, (T, len(coco), 2))
    w = np.ones((T, len(coco)))
    f, c = focal_from_fov((640, 480)), (320.0, 240.0)

    def err(t):
        return (np.linalg.norm(quality.project(X + t[:, None], f, c) - uv, axis=-1) ** 2).sum(-1)

    linear = quality.fit_translation(X, uv, w, f, c, iterations=0)
    refined = quality.fit_translation(X, uv, w, f, c, iterations=3)
    assert (err(refined) <= err(linear) + 1e-9).all()
    # too few usable joints: NaN, not a made-up translation
    w[0, 1:] = 0.0
    assert np.isnan(quality.fit_translation(X, uv, w, f, c)[0]).all()


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="poses_3d"):
        quality.bone_length_cv(np.zeros((2, 5, 16, 3)), np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="present"):
        quality.jitter(np.zeros((2, 5, 17, 3)), np.ones((2, 4), bool), np.arange(5.0))
    with pytest.raises(ValueError, match="timestamps"):
        quality.jitter(np.zeros((1, 5, 17, 3)), np.ones((1, 5), bool), np.zeros(5))
