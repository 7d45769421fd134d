"""wildpose.world: the shipped trajectory model, the geometric root fit and the world alignment, on held-out
CMU mocap seen through virtual cameras and on a real video."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wildpose.errors import ModelError
from wildpose.lift import lift
from wildpose.lift.train.cameras import look_rotation, project, world_to_camera
from wildpose.lift.train.data import load_split
from wildpose.lift.train.trajectory import make_scenes, score_trajectory
from wildpose.lift.weights import default_model_path
from wildpose.skeleton import COCO_FLIP
from wildpose.world import (ANKLE_HEIGHT, align_world, estimate_trajectory, fit_root, load_trajectory_model,
                            locate_people)


@pytest.fixture(scope="module")
def held_out(mocap_dir):
    """Two test-split clips (never trained on): the martial-arts performer and CMU subject 5, 30 fps."""
    martial = load_split(mocap_dir, ["martial:?"], max_clips=1)
    ballet = load_split(mocap_dir, ["cmu:05"], max_clips=1)
    return martial, ballet


def _at_30fps(clips):
    h, c = clips.clip(0)
    return h[::2].astype(np.float64), c[::2].astype(np.float64)


def _camera_scene(h, c, pitch_deg, roll_deg, height, distance, yaw_offset_deg=80.0, size=(1280, 720), fov=60.0):
    """A static camera looking at the middle of the take from ``distance`` m, ``height`` m above the floor
    (the take's median lower-ankle height minus ANKLE_HEIGHT), roughly across the main direction of motion."""
    floor = np.median(h[:, [3, 6], 1].min(axis=1)) - ANKLE_HEIGHT
    mid = h[:, 0].mean(axis=0)
    motion = h[-1, 0] - h[0, 0]
    heading = math.atan2(motion[0], motion[2]) + math.radians(yaw_offset_deg)
    centre = np.array([mid[0] - distance * math.sin(heading), floor + height, mid[2] - distance * math.cos(heading)])
    rot = look_rotation(np.array([heading]), np.array([math.radians(pitch_deg)]), np.array([math.radians(roll_deg)]))
    focal = max(size) / (2 * math.tan(math.radians(fov) / 2))
    px = project(world_to_camera(c[None], rot, centre[None]), np.array([focal]), np.array([size], float))[0]
    joints_cam = world_to_camera(h[None], rot, centre[None])[0]
    return px, joints_cam, rot[0], centre, floor, focal, size


def _absolute(px, size, focal):
    """The shipped models' view of a 2D track: lifted pose + trajectory, camera axes."""
    return lift(px, size, 30.0, focal_length=focal) + estimate_trajectory(px, size, 30.0, focal_length=focal)[:, None]


def test_shipped_trajectory_model_loads():
    model = load_trajectory_model()
    assert model.out_joints == 1 and model.config["out_layout"] == "root"
    assert model.config["input_normalisation"] == "focal"
    out = model.predict(np.zeros((40, 17, 2), np.float32))
    assert out.shape == (40, 1, 3)


def test_pose_lifter_is_not_a_trajectory_model():
    with pytest.raises(ModelError, match="not a trajectory model"):
        load_trajectory_model(default_model_path())


def test_trajectory_depth_on_held_out_clips(held_out):
    for clips in held_out:
        for noise in (False, True):
            scenes = make_scenes(clips, noise=noise, max_segments=3)
            res = score_trajectory(lambda s: estimate_trajectory(s["keypoints"], s["image_size"], 30.0,
                                                                 focal_length=s["focal"]), scenes)
            assert res["depth_pct"] < 15.0, (clips.names[0], noise, res)
            # and it follows the person: better than the best constant depth for the whole segment would be
            flat = score_trajectory(lambda s: np.broadcast_to(
                np.median(s["joints_cam"][:, 0], axis=0), (len(s["keypoints"]), 3)), scenes)
            assert res["root_mm"] < flat["root_mm"] or res["depth_pct"] < 5.0, (res, flat)


def test_trajectory_input_checks_and_mirror_symmetry(held_out):
    h, c = _at_30fps(held_out[0])
    px, *_ , focal, size = _camera_scene(h[:120], c[:120], 10.0, 0.0, 1.5, 6.0)
    root = estimate_trajectory(px, size, 30.0, focal_length=focal)
    assert root.shape == (120, 3) and root.dtype == np.float32
    mirrored = px[:, COCO_FLIP].copy()
    mirrored[..., 0] = size[0] - mirrored[..., 0]
    back = estimate_trajectory(mirrored, size, 30.0, focal_length=focal)
    np.testing.assert_allclose(back[:, 0], -root[:, 0], atol=1e-3)
    np.testing.assert_allclose(back[:, 1:], root[:, 1:], atol=1e-3)
    # a 60 fps track gives the 30 fps answer at the shared frames (resampled to the model's rate)
    t60 = np.arange(239) / 60.0
    px60 = np.stack([np.interp(t60, np.arange(120) / 30.0, px[:, j, k]) for j in range(17) for k in range(2)],
                    -1).reshape(-1, 17, 2)
    root60 = estimate_trajectory(px60, size, 60.0, focal_length=focal)
    np.testing.assert_allclose(root60[::2], root, atol=0.02)
    bad = px.copy()
    bad[5, 3] = np.nan
    with pytest.raises(ValueError, match="keypoints_2d"):
        estimate_trajectory(bad, size, 30.0)
    with pytest.raises(ValueError, match="timestamps"):
        estimate_trajectory(px, size, 30.0, timestamps=np.zeros(len(px)))


def test_fit_root_recovers_the_root_from_a_true_pose(held_out):
    h, c = _at_30fps(held_out[1])
    px, joints_cam, *_, focal, size = _camera_scene(h, c, 5.0, 0.0, 1.4, 5.0)
    pose = joints_cam - joints_cam[:, :1]
    root = fit_root(pose, px, size, focal)
    depth_err = np.abs(root[:, 2] - joints_cam[:, 0, 2]) / joints_cam[:, 0, 2]
    assert np.median(depth_err) < 0.03  # COCO hips sit 10% wider than the H36M hip joints: not exact
    assert np.median(np.linalg.norm(root - joints_cam[:, 0], axis=-1)) < 0.2


@pytest.mark.parametrize("pitch, roll, height", [(12.0, -3.0, 1.7), (25.0, 2.0, 2.5)])
def test_align_world_recovers_a_known_camera(held_out, pitch, roll, height):
    h, c = _at_30fps(held_out[1])  # CMU subject 5 travelling ~5 m
    px, joints_cam, rot, centre, floor, focal, size = _camera_scene(h, c, pitch, roll, height, 6.0)
    poses_cam = _absolute(px, size, focal)
    world, camera = align_world(poses_cam[None])
    true_up = rot @ np.array([0.0, 1.0, 0.0])
    up_err = math.degrees(math.acos(np.clip(true_up @ camera["up_camera"], -1.0, 1.0)))
    # the lifter makes bodies a little too upright under steep cameras (docs/MODEL.md): a few degrees
    assert up_err < 5.0, camera
    assert abs(camera["pitch_deg"] - pitch) < 5.0, camera
    assert abs(camera["roll_deg"] - roll) < 4.0, camera
    assert abs(camera["height"] - height) < 0.35 * height, camera
    assert world.shape == poses_cam[None].shape
    lower = np.nanmin(world[0][:, [3, 6], 1], axis=-1)
    assert abs(np.median(lower) - ANKLE_HEIGHT) < 0.05  # the feet stand on y = 0
    # where the true feet are, the estimated floor is within 25 cm of the true one
    gt_low_idx = np.where(h[:, 3, 1] < h[:, 6, 1], 3, 6)
    ank_cam = joints_cam[np.arange(len(h)), gt_low_idx]
    y_est = ank_cam @ camera["rotation"][1].astype(np.float64) + camera["height"]
    y_true = h[np.arange(len(h)), gt_low_idx, 1] - floor
    assert np.median(np.abs(y_est - y_true)) < 0.25
    # world axes: x right, y up, z towards the camera; the person is in front of the camera (z < 0)
    assert np.nanmedian(world[0, :, 0, 2]) < 0
    np.testing.assert_allclose(camera["rotation"] @ camera["rotation"].T, np.eye(3), atol=1e-5)
    assert np.linalg.det(camera["rotation"]) > 0


def test_align_world_crowd(held_out, mocap_dir):
    """Five held-out takes spread over one floor, one camera 20 degrees down: the up direction comes from
    everybody's feet; each person's depth scale is pulled to the common floor."""
    takes = [_at_30fps(held_out[0]), _at_30fps(held_out[1])]
    more = load_split(mocap_dir, ["cmu:05"], max_clips=4)
    takes += [(more.clip(i)[0][::2].astype(np.float64), more.clip(i)[1][::2].astype(np.float64)) for i in (1, 2, 3)]
    rng = np.random.default_rng(3)
    T = min(len(t[0]) for t in takes)
    hs, cs = [], []
    for h, c in takes:
        floor = np.median(h[:T, [3, 6], 1].min(axis=1))
        shift = np.array([h[:T, 0, 0].mean() + rng.uniform(-3, 3), floor, h[:T, 0, 2].mean() + rng.uniform(-3, 3)])
        hs.append(h[:T] - shift)
        cs.append(c[:T] - shift)
    rot = look_rotation(np.array([0.3]), np.array([math.radians(20.0)]), np.array([0.0]))
    centre = np.array([[-4.0, 3.0, -9.0]])
    size, focal = (1920, 1080), 1920 / (2 * math.tan(math.radians(35.0)))
    poses = []
    for h, c in zip(hs, cs):
        px = project(world_to_camera(c[None], rot, centre), np.array([focal]), np.array([size], float))[0]
        poses.append(_absolute(px, size, focal))
    poses = np.stack(poses)
    poses[1, :20] = np.nan  # someone not yet in view
    world, camera = align_world(poses)
    true_up = rot[0] @ np.array([0.0, 1.0, 0.0])
    assert math.degrees(math.acos(np.clip(true_up @ camera["up_camera"], -1, 1))) < 4.0, camera
    assert abs(camera["pitch_deg"] - 20.0) < 4.0
    assert np.isnan(world[1, :20]).all() and np.isfinite(world[1, 20:]).all()
    lower = world[..., [3, 6], 1].min(axis=-1)  # (P, T), NaN where absent
    assert np.all(np.abs(np.nanmedian(lower, axis=1) - ANKLE_HEIGHT) < 0.15)


def test_align_world_input_checks():
    with pytest.raises(ValueError, match="poses_cam"):
        align_world(np.zeros((10, 17, 3)))
    with pytest.raises(ValueError, match="no frame"):
        align_world(np.full((2, 5, 17, 3), np.nan))
    with pytest.raises(ValueError, match="rows"):
        align_world(np.zeros((10, 17, 3)), person=np.zeros(9, int))


def test_align_world_rows_equal_the_dense_layout(held_out, mocap_dir):
    """Sparse rows (a person index per row) give the same world as the (P, T) layout, to the bit."""
    h, c = _at_30fps(held_out[1])
    _, joints_cam, *_ = _camera_scene(h, c, 15.0, 2.0, 1.8, 6.0)
    n = min(60, len(joints_cam))
    poses = np.full((3, n + 20, 17, 3), np.nan)
    for p in range(3):  # three people in view over different, overlapping spans
        poses[p, 10 * p:10 * p + n] = joints_cam[:n] + np.array([1.5 * p - 1.5, 0.0, 0.8 * p])
    dense_world, dense_cam = align_world(poses)
    present = np.isfinite(poses).all((-1, -2))
    person, frame = np.nonzero(present)
    rows_world, rows_cam = align_world(poses[present], person=person)
    np.testing.assert_array_equal(rows_world, dense_world[present])
    np.testing.assert_array_equal(rows_cam["rotation"], dense_cam["rotation"])


def test_walk_video_world_is_upright(walk_video):
    from wildpose.pipeline import RunOptions, process_video

    result, info = process_video(walk_video, RunOptions(end=4))
    # the world stage alone, on the sparse rows, as if the camera were static
    placed = locate_people(result, result.keypoints_2d, result.poses_3d, info.image_size, info.fps)
    N, T = result.num_rows, result.num_frames
    assert placed.trajectory.shape == (N, 3) and placed.poses_world.shape == (N, 17, 3)
    assert placed.rotation.shape == (3, 3) and placed.position.shape == (3,)
    assert placed.rotations.shape == (T, 3, 3)
    main = result.main_track
    rows = result.track(main)
    world = placed.poses_world[rows]
    ok = np.isfinite(world).all((-1, -2))
    assert ok.sum() > 0.8 * (rows.stop - rows.start)
    spine = world[ok, 8] - world[ok, 0]
    tilt = np.degrees(np.arccos(spine[:, 1] / np.linalg.norm(spine, axis=-1)))
    assert np.median(tilt) < 20.0 and np.percentile(tilt, 90) < 30.0
    lower = world[ok][:, [3, 6], 1].min(axis=-1)
    assert np.mean(np.abs(lower) < 0.3) > 0.9  # his feet stay near the floor, y = 0
    assert 0.5 < np.median(world[ok, 0, 1]) < 1.3  # the pelvis at a standing adult's height
    depth = placed.trajectory[rows][ok, 2]
    assert 2.0 < np.median(depth) < 20.0
