"""wildpose.lift.refine: lifted poses pulled onto their keypoints' camera rays and towards steady bone lengths."""

from __future__ import annotations

import numpy as np
import pytest

from wildpose import skeleton
from wildpose.lift import lift, load_lifter, run_temporal_model
from wildpose.lift.normalize import normalize_keypoints
from wildpose.lift.refine import LIMB_BONES, RAY_JOINTS, h36m_rays, refine_poses, track_bone_lengths

SIZE = (512, 512)


@pytest.fixture(scope="module")
def astronaut_track(astronaut):
    """MoveNet's keypoints on skimage's astronaut as a 2 s still track at 30 fps, its rays and the shipped
    lifter's raw (unrefined) poses."""
    from wildpose.detect2d import create_detector

    people = create_detector("movenet")(astronaut)
    assert len(people) >= 1, "MoveNet found nobody in the astronaut image"
    kp = np.repeat(people.keypoints[int(np.argmax(people.scores))][None], 60, axis=0)
    rays = normalize_keypoints(kp[..., :2], SIZE, "focal")
    raw = run_temporal_model(load_lifter(), kp, SIZE, 30.0)
    raw[:, 0] = 0.0  # as lift() returns them
    return kp, rays, raw


def ray_misfit(poses: np.ndarray, rays: np.ndarray) -> np.ndarray:
    """Per frame, metres: how far the ray joints of root-relative ``poses`` are from lying on the rays of one
    common distance (the least-squares distance refine fits; 0 when they all lie on their rays)."""
    r, _ = h36m_rays(rays)
    a = r[:, RAY_JOINTS] - r[:, :1]
    b = r[:, RAY_JOINTS] * poses[:, RAY_JOINTS, 2:3] - poses[:, RAY_JOINTS, :2]
    d = -(a * b).sum((1, 2)) / (a * a).sum((1, 2))
    return np.sqrt(((d[:, None, None] * a + b) ** 2).sum(-1).mean(-1))


def test_refined_joints_lie_on_their_keypoints_rays(astronaut_track):
    """On real MoveNet keypoints the shipped lifter's pose does not project onto them (centimetres off); the
    refined one does, its limb bones come out left-right equal where the blend is full, and the joints
    without 2D counterparts follow the shoulders and hips."""
    kp, rays, raw = astronaut_track
    before = ray_misfit(raw, rays)
    assert before.min() > 0.005  # the network alone is off by more than 5 mm per joint
    for blend in (0.0, 0.5, 1.0):
        # scores omitted: every joint is trusted, so every ray joint lands on its ray (before step 3, which
        # scales bones in their own directions)
        refined = refine_poses(raw, rays, 30.0, bone_blend=blend, steady_blend=0.0)
        assert refined.shape == raw.shape and refined.dtype == np.float32 and np.all(refined[:, 0] == 0)
        assert ray_misfit(refined, rays).max() < 1e-4
    lengths = np.linalg.norm(refined[:, [c for _, c in LIMB_BONES]] - refined[:, [p for p, _ in LIMB_BONES]], axis=-1)
    names = skeleton.H36M_NAMES
    upper_left, upper_right = (names.index(n) for n in ("left_elbow", "right_elbow"))
    left, right = ([c for _, c in LIMB_BONES].index(j) for j in (upper_left, upper_right))
    np.testing.assert_allclose(lengths[:, left], lengths[:, right], atol=1e-4)  # upper arms, both visible
    moved = np.linalg.norm(refined - raw, axis=-1)
    assert moved[:, RAY_JOINTS].max() > 0.01


def test_scores_weight_the_moves(astronaut_track):
    """A keypoint the detector did not see moves nothing; none seen: the lifter's poses come back."""
    kp, rays, raw = astronaut_track
    np.testing.assert_allclose(refine_poses(raw, rays, 30.0, np.zeros(kp.shape[:2]), steady_blend=0.0), raw,
                               atol=1e-6)
    elbows = [skeleton.H36M_NAMES.index(n) for n in ("left_elbow", "right_elbow")]
    scores = kp[..., 2].copy()  # the astronaut's wrists and legs are out of the picture: scored < 0.2
    assert scores[0, 7] > 0.1 and scores[0, 8] > 0.1  # MoveNet saw both elbows
    scores[:, [7, 8]] = 0.0
    refined = refine_poses(raw, rays, 30.0, scores, steady_blend=0.0)
    # both elbows keep their place in the lifted pose, so both shift only with the root: by the same vector
    shift = refined[:, elbows] - raw[:, elbows]
    np.testing.assert_allclose(shift[:, 0], shift[:, 1], atol=1e-6)
    seen = refine_poses(raw, rays, 30.0, kp[..., 2], steady_blend=0.0) - raw
    assert np.abs(seen[:, elbows[0]] - seen[:, elbows[1]]).max() > 0.005


def test_steady_bones_halve_each_bones_deviation_in_its_own_direction(astronaut_track):
    """Step 3 alone (nothing seen, so steps 1-2 move nothing): every bone keeps the lifter's direction and
    comes half-way to its track length (the median, left and right averaged)."""
    kp, rays, raw = astronaut_track
    rng = np.random.default_rng(5)
    wobbly = raw + rng.normal(0, 0.02, raw.shape).astype(np.float32)  # lengths that change from frame to frame
    wobbly[:, 0] = 0.0
    out = refine_poses(wobbly, rays, 30.0, np.zeros(kp.shape[:2]))
    bones_in = wobbly[:, 1:] - wobbly[:, skeleton.H36M_PARENTS[1:]]
    bones_out = out[:, 1:] - out[:, skeleton.H36M_PARENTS[1:]]
    len_in, len_out = np.linalg.norm(bones_in, axis=-1), np.linalg.norm(bones_out, axis=-1)
    np.testing.assert_allclose(bones_out / len_out[..., None], bones_in / len_in[..., None], atol=1e-4)
    track = np.median(len_in, axis=0)
    track = 0.5 * (track + track[skeleton.H36M_FLIP[1:] - 1])
    np.testing.assert_allclose(len_out - track, 0.5 * (len_in - track), atol=1e-5)
    cv = lambda lengths: (lengths.std(0) / lengths.mean(0)).mean()  # noqa: E731
    assert cv(len_out) < 0.6 * cv(len_in)


def test_known_bone_lengths_replace_the_estimate(astronaut_track):
    """A performer's measured bone lengths, given, are what step 3 steers to (at a full blend: exactly), not
    the lengths estimated from the lifter's output."""
    kp, rays, raw = astronaut_track
    bones = lambda poses: np.linalg.norm(poses[:, 1:] - poses[:, skeleton.H36M_PARENTS[1:]], axis=-1)  # noqa: E731
    measured = 1.1 * np.median(bones(raw), axis=0)  # a person 10% larger than the lifter assumed
    out = refine_poses(raw, rays, 30.0, kp[..., 2], steady_blend=1.0, lengths=measured)
    np.testing.assert_allclose(bones(out), np.broadcast_to(measured, (len(out), 16)), rtol=1e-5)
    estimated = refine_poses(raw, rays, 30.0, kp[..., 2], steady_blend=1.0)
    np.testing.assert_allclose(bones(estimated), track_bone_lengths(raw.astype(np.float64)), rtol=1e-5)
    assert np.abs(bones(estimated) - bones(out)).max() > 0.01


def test_lift_refines_by_default_and_not_when_asked(astronaut_track):
    kp, rays, raw = astronaut_track
    plain = lift(kp, SIZE, 30.0, refine=False)
    np.testing.assert_allclose(plain, raw, atol=1e-6)
    refined = lift(kp, SIZE, 30.0)
    network = run_temporal_model(load_lifter(), kp, SIZE, 30.0)  # root within 1e-4 of 0, not exactly
    np.testing.assert_allclose(refined, refine_poses(network, rays, 30.0, kp[..., 2]), atol=1e-6)
    assert np.abs(refined - plain).max() > 0.01


def test_refinement_is_mirror_equivariant(astronaut_track):
    """Mirroring the image (x -> -x, left <-> right) mirrors the refined poses."""
    kp, rays, raw = astronaut_track
    rng = np.random.default_rng(3)
    moving = raw + rng.normal(0, 0.01, raw.shape).astype(np.float32)  # a track that changes in time
    mirror_rays = rays[:, skeleton.COCO_FLIP] * np.array([-1.0, 1.0], np.float32)
    mirror_poses = moving[:, skeleton.H36M_FLIP] * np.array([-1.0, 1.0, 1.0], np.float32)
    for causal in (False, True):
        out = refine_poses(moving, rays, 30.0, kp[..., 2], causal=causal)
        mirrored = refine_poses(mirror_poses, mirror_rays, 30.0, kp[:, skeleton.COCO_FLIP, 2], causal=causal)
        np.testing.assert_allclose(mirrored, out[:, skeleton.H36M_FLIP] * np.array([-1.0, 1.0, 1.0]), atol=1e-5)


def test_causal_refinement_ignores_the_future(astronaut_track):
    """For streaming: with causal=True no refined frame depends on a later frame (smoothing, bone lengths and
    the distance of frames without a fit all look back only); the symmetric refinement does look ahead."""
    kp, rays, raw = astronaut_track
    rng = np.random.default_rng(4)
    poses = raw + rng.normal(0, 0.02, raw.shape).astype(np.float32)
    changed_poses, changed_rays = poses.copy(), rays.copy()
    changed_poses[40:] += rng.normal(0, 0.05, changed_poses[40:].shape).astype(np.float32)
    changed_rays[40:] += rng.normal(0, 0.02, changed_rays[40:].shape).astype(np.float32)
    scores = kp[..., 2].copy()
    scores[35:38] = 0.0  # frames without a fit, just before the change
    a = refine_poses(poses, rays, 30.0, scores, causal=True)
    b = refine_poses(changed_poses, changed_rays, 30.0, scores, causal=True)
    np.testing.assert_array_equal(a[:40], b[:40])
    assert np.abs(a[40:] - b[40:]).max() > 1e-3
    s_a = refine_poses(poses, rays, 30.0, scores)
    s_b = refine_poses(changed_poses, changed_rays, 30.0, scores)
    assert np.abs(s_a[:40] - s_b[:40]).max() > 1e-4


def test_refinement_lowers_held_out_error(mocap_dir, tmp_path):
    """On held-out mocap (test subjects, their own random cameras) refinement lowers the shipped lifters'
    error, with exact and with MoveNet-like 2D (docs/MODEL.md has the full-split numbers)."""
    from wildpose.lift.train.data import DEFAULT_SPLIT, load_split
    from wildpose.lift.train.evaluate import make_sequences, numpy_predictor, score
    from wildpose.lift.train.noise import MOVENET_NOISE

    for name in (None, "causal"):
        model = load_lifter(name)
        held_out = model.config["provenance"]["split"]["test"]  # the groups this model never saw
        assert set(held_out) <= set(DEFAULT_SPLIT["test"])
        clips = load_split(mocap_dir, held_out, 3, tmp_path / "cache")
        for noise, gain in ((False, 2.0), (MOVENET_NOISE, 0.5)):
            seqs = make_sequences(clips, model.fps, noise=noise, max_segments=6)
            raw = score(numpy_predictor(model), seqs)
            refined = score(numpy_predictor(model, refine=True), seqs)
            assert refined["mpjpe_mm"] < raw["mpjpe_mm"] - gain, (name, bool(noise), raw, refined)
            assert refined["p_mpjpe_mm"] < raw["p_mpjpe_mm"] - gain, (name, bool(noise), raw, refined)


def test_refined_walker_has_steadier_bones_than_the_raw_network(walk_video):
    """On the real walking video (MoveNet keypoints with their scores, default focal length) the refined
    track's bones vary less than the raw network's and its limbs reproject closer to the keypoints; the first
    version failed this on real video (score-weighted moves dragged the person's image offset along)."""
    from wildpose import quality
    from wildpose.pipeline import RunOptions, lift_tracks, process_video
    from wildpose.types import Result

    result, info = process_video(walk_video, RunOptions(end=4))
    tracks = result.tracks()
    raw_poses = lift_tracks(tracks, info.image_size, info.fps, refine=False)
    raw = Result.from_tracks(tracks, raw_poses, result.fps, result.image_size)
    p = result.main_track
    present = result.present()
    cv_refined = quality.bone_cv_summary(quality.bone_length_cv(result.dense(result.poses_3d), present))
    cv_raw = quality.bone_cv_summary(quality.bone_length_cv(raw.dense(raw.poses_3d), present))
    assert cv_refined["median"][p] < 0.8 * cv_raw["median"][p]
    assert cv_refined["worst"][p] < cv_raw["worst"][p]
    assert quality.reprojection_error(result).median_relative[p] < quality.reprojection_error(raw).median_relative[p]
    rows = result.track(p)
    moved = np.linalg.norm(result.poses_3d[rows] - raw.poses_3d[rows], axis=-1)
    assert np.median(moved) < 0.05  # centimetres, not the metres of the bug
