"""The BVH exporter, read back by an independent reader (bvhio, from PyPI) and by Blender's importer, on the real
walk and crowd results, plus synthetic tracks whose answer is known (a person turning round, a straightening
elbow, a track with a hole and a variable frame rate)."""

from __future__ import annotations

import json

import bvhio
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from blender_client import needs_blender, read_bones, world_from_blender
from wildpose.export import bvh
from wildpose.export.skeleton_fit import fit_result, fit_track
from wildpose.skeleton import H36M_NAMES, H36M_PARENTS
from wildpose.types import Result
from wildpose.world import ANKLE_HEIGHT

# the constant-length fit's own distance from poses_world on the shared results (docs/OUTPUTS.md, "BVH": walk
# mean 11.4 / max 114 mm, crowd 10.3 / 119 mm): bounds a little above those, so a worse fit fails
FIT_MEAN_MM, FIT_MAX_MM = 15.0, 150.0


def bvhio_joints(path) -> np.ndarray:
    """(K, 17, 3) metres: bvhio's forward kinematics of every frame of a BVH file (cm)."""
    root = bvhio.readAsHierarchy(str(path))
    joints = {joint.Name: joint for joint, _, _ in root.layout()}
    frames = len(root.Keyframes)
    out = np.empty((frames, len(H36M_NAMES), 3))
    for k in range(frames):
        root.loadPose(k)
        for j, name in enumerate(H36M_NAMES):
            out[k, j] = tuple(joints[name].PositionWorld)
    return out / 100.0


def standing_pose() -> np.ndarray:
    """(17, 3) metres: a person facing +z (their left at +x), knees and elbows a little bent, feet on y = 0.08."""
    pose = {"pelvis": (0, 0.95, 0), "right_hip": (-0.12, 0.93, 0), "right_knee": (-0.12, 0.51, 0.04),
            "right_ankle": (-0.12, 0.08, -0.01), "spine": (0, 1.18, -0.01), "thorax": (0, 1.45, 0),
            "neck": (0, 1.57, 0.02), "head": (0, 1.68, 0.05), "left_shoulder": (0.17, 1.42, 0),
            "left_elbow": (0.22, 1.14, 0.02), "left_wrist": (0.25, 0.90, 0.12)}
    for side, other, names in (("right", "left", ("hip", "knee", "ankle")),
                               ("left", "right", ("shoulder", "elbow", "wrist"))):
        for name in names:  # the mirror image in x
            x, y, z = pose[f"{side}_{name}"]
            pose[f"{other}_{name}"] = (-x, y, z)
    return np.array([pose[name] for name in H36M_NAMES], np.float64)


def turning_round(frames: int = 120) -> tuple[np.ndarray, np.ndarray]:
    """A rigid pose turning once about y while walking a circle, 3 degrees a frame at 30 fps."""
    angles = np.arange(frames) * 2 * np.pi / frames
    spin = Rotation.from_euler("y", angles[:, None]).as_matrix()
    centre = standing_pose()[0] * [0, 1, 0]
    poses = np.einsum("kij,nj->kni", spin, standing_pose() - centre) + centre
    poses[..., 0] += 2 * np.cos(angles)[:, None]
    poses[..., 2] += 2 * np.sin(angles)[:, None]
    return poses, np.arange(frames) / 30.0


def turn_degrees(q: np.ndarray) -> np.ndarray:
    """(K-1, ...) degrees each joint's rotation turns from one sample to the next."""
    dots = np.abs(np.sum(q[1:] * q[:-1], axis=-1))
    return np.degrees(2 * np.arccos(np.clip(dots, 0, 1)))


def result_of(poses: np.ndarray, frame_index: np.ndarray, timestamps: np.ndarray, fps: float) -> Result:
    n = len(poses)
    return Result(np.array([7]), np.array([n]), frame_index, timestamps, keypoints_2d=np.zeros((n, 17, 3)),
                  poses_3d=np.zeros((n, 17, 3)), interpolated=np.zeros(n, bool), fps=fps, image_size=(640, 480),
                  poses_world=poses)


# -- synthetic: known answers --------------------------------------------------------------------------------------
def test_turning_round_is_exact_and_continuous(tmp_path):
    poses, times = turning_round()
    fit = fit_track(poses, times, 30.0)
    # constant bones and a rigid pelvis and thorax: the rig reproduces the input exactly
    assert fit.fit_error().max() < 1e-6
    # the body is rigid, so every joint's local rotation stays what it was; the root turns 3 degrees a frame
    assert turn_degrees(fit.rotations[:, 1:]).max() < 1e-4
    np.testing.assert_allclose(turn_degrees(fit.rotations[:, 0]), 3.0, atol=1e-6)
    # Euler angles unwrapped: no jump of 360 (or of the other triple) as the person faces backwards
    # (the root's angles are a 3-degree turn about y after the pelvis's small rest tilt, so a little more)
    assert np.abs(np.diff(fit.euler_zxy, axis=0)).max() < 3.5
    assert abs(fit.euler_zxy[-1, 0, 2] - fit.euler_zxy[0, 0, 2]) == pytest.approx(357.0, abs=0.5)
    # and the file says the same to bvhio
    files = bvh.export(result_of(poses, np.arange(len(poses)), times, 30.0), tmp_path, "spin")
    np.testing.assert_allclose(bvhio_joints(files[0]), poses, atol=1e-6)


def test_rest_pose_is_an_upright_t_pose():
    fit = fit_track(*turning_round(10), 30.0)
    rest = np.zeros((17, 3))
    for j in range(1, 17):
        rest[j] = rest[H36M_PARENTS[j]] + fit.offsets[j]
    names = {n: rest[j] for j, n in enumerate(H36M_NAMES)}
    assert names["head"][1] > names["thorax"][1] > names["spine"][1] > 0 > names["right_knee"][1] > names["right_ankle"][1]
    assert names["left_wrist"][0] > names["left_elbow"][0] > names["left_shoulder"][0] > 0  # left at +x
    assert names["right_wrist"][0] < names["right_elbow"][0] < names["right_shoulder"][0] < 0
    np.testing.assert_allclose(names["left_wrist"][1:], names["left_shoulder"][1:])  # arms straight out


def test_straightening_elbow_does_not_flip_the_upper_arm():
    """The forearm swings inward across the body, through straight, to a little past it, 1 degree a frame: the
    bending plane's normal flips sign there, the upper arm's twist must not."""
    base = standing_pose()
    shoulder, elbow = base[H36M_NAMES.index("left_shoulder")], base[H36M_NAMES.index("left_elbow")]
    upper = (elbow - shoulder) / np.linalg.norm(elbow - shoulder)
    forearm = np.linalg.norm(base[H36M_NAMES.index("left_wrist")] - elbow)
    bends = np.radians(np.arange(60, -11, -1.0))  # inward bend in the frontal plane, degrees -> radians
    axis = np.cross(upper, [0, 0, 1.0])
    poses = np.repeat(base[None], len(bends), axis=0)
    poses[:, H36M_NAMES.index("left_wrist")] = elbow + forearm * Rotation.from_rotvec(
        bends[:, None] * axis / np.linalg.norm(axis)).apply(upper)
    fit = fit_track(poses, np.arange(len(bends)) / 30.0, 30.0)
    assert fit.fit_error().max() < 1e-6
    assert turn_degrees(fit.rotations[:, H36M_NAMES.index("left_shoulder")]).max() < 2.0
    assert turn_degrees(fit.rotations[:, H36M_NAMES.index("left_elbow")]).max() < 3.0


def test_hole_and_variable_frame_rate(tmp_path):
    """A track walking straight on, absent for frames 20-29, on a clock with jitter and a dropped frame: one clip
    on the 25 fps grid from its first to its last row, the hole interpolated and marked."""
    frames = np.r_[0:20, 30:60]
    timestamps = np.arange(80) / 25.0 + np.where(np.arange(80) % 3 == 1, 0.01, 0.0)
    timestamps[45:] += 0.04  # a dropped frame
    start = 5  # the video starts before the track
    t = timestamps[frames + start]
    poses = standing_pose()[None] + np.stack([np.zeros_like(t), np.zeros_like(t), 1.4 * t], -1)[:, None]
    result = result_of(poses.astype(np.float32), frames + start, timestamps, 25.0)
    files = bvh.export(result, tmp_path, "gap")
    manifest = json.loads((tmp_path / "gap_bvh.json").read_text())
    entry = manifest["files"][0]
    expected = int(np.floor((t[-1] - t[0]) * 25 + 0.5)) + 1
    assert (entry["file"], entry["track_id"], entry["frames"]) == ("gap_track7.bvh", 7, expected)
    assert entry["start_time_s"] == pytest.approx(t[0]) and entry["first_frame"] == start
    assert entry["filled_frames"] >= 9
    container = bvhio.readAsBvh(str(files[0]))
    assert container.FrameTime == pytest.approx(0.04) and len(container.Root.Keyframes) == expected
    joints = bvhio_joints(files[0])
    grid = t[0] + np.arange(expected) / 25.0
    truth = standing_pose()[None] + np.stack([0 * grid, 0 * grid, 1.4 * np.minimum(grid, t[-1])], -1)[:, None]
    np.testing.assert_allclose(joints, truth, atol=2e-5)  # a straight walk interpolates exactly


# -- the real results ----------------------------------------------------------------------------------------------
def _check_result(result, tmp_path, stem):
    files = bvh.export(result, tmp_path, stem)
    manifest = json.loads((tmp_path / f"{stem}_bvh.json").read_text())
    assert [f.name for f in files] == [e["file"] for e in manifest["files"]] + [f"{stem}_bvh.json"]
    errors = []
    for p, entry in enumerate(manifest["files"]):
        fit = fit_result(result, p)
        assert entry["track_id"] == int(result.track_ids[p])
        assert entry["start_time_s"] == pytest.approx(result.timestamps[result.frames(p)[0]], abs=1e-6)
        joints = bvhio_joints(tmp_path / entry["file"])
        assert joints.shape == fit.fitted.shape
        # the independent reader's forward kinematics is the rig the exporter fitted
        assert np.abs(joints - fit.fitted).max() < 1e-4  # metres: well under a millimetre
        # constant bone lengths, and the root where poses_world's pelvis is
        bones = np.linalg.norm(joints[:, 1:] - joints[:, H36M_PARENTS[1:]], axis=-1)
        assert np.ptp(bones, axis=0).max() < 1e-4
        np.testing.assert_allclose(joints[:, 0], fit.target[:, 0], atol=1e-5)
        errors.append(np.linalg.norm(joints - fit.target, axis=-1).ravel())
    errors = np.concatenate(errors) * 1000
    assert errors.mean() < FIT_MEAN_MM and errors.max() < FIT_MAX_MM, (errors.mean(), errors.max())
    return files, manifest


@pytest.mark.slow
def test_walk_bvh_read_back_by_bvhio(walk_result, tmp_path):
    files, manifest = _check_result(walk_result, tmp_path, "walk")
    assert len(files) == len(walk_result.track_ids) + 1
    (entry,) = manifest["files"]
    assert entry["frames"] == walk_result.track_lengths[0]  # a constant 25 fps: one sample per row
    assert bvhio.readAsBvh(str(files[0])).FrameTime == pytest.approx(1 / walk_result.fps)


@pytest.mark.slow
def test_crowd_bvh_read_back_by_bvhio(crowd_result, tmp_path):
    files, manifest = _check_result(crowd_result, tmp_path, "crowd")
    assert len(files) == len(crowd_result.track_ids) + 1
    for p, entry in enumerate(manifest["files"]):
        t = crowd_result.timestamps[crowd_result.frames(p)]
        assert entry["frames"] == int(np.floor((t[-1] - t[0]) * crowd_result.fps + 0.5)) + 1


def _check_in_blender(result, track, tmp_path, stem):
    files = bvh.export(result, tmp_path, stem)
    fit = fit_result(result, track)
    path = tmp_path / f"{stem}_track{fit.track_id}.bvh"
    assert path in files
    frames = np.unique(np.linspace(0, fit.num_samples - 1, 5).round().astype(int))
    data = read_bones("bvh", path, frames.tolist(), tmp_path)
    (bones,) = data["armatures"].values()
    heads = np.stack([bones[name] for name in H36M_NAMES], axis=1)  # (F, 17, 3) Blender axes
    # Blender's bones, frame by frame, are the BVH's joints (its importer turned y up into its z up)
    np.testing.assert_array_less(np.linalg.norm(world_from_blender(heads) - fit.fitted[frames], axis=-1), 0.01)
    # upright in Blender: z up, the head well above the pelvis, the pelvis above the ankles
    z = heads[..., 2]
    assert (z[:, H36M_NAMES.index("head")] - z[:, 0] > 0.3).all()
    lower_ankle = np.minimum(z[:, H36M_NAMES.index("right_ankle")], z[:, H36M_NAMES.index("left_ankle")])
    assert (z[:, 0] - lower_ankle > 0.5).all()
    return lower_ankle


@needs_blender
@pytest.mark.slow
def test_walk_bvh_in_blender(walk_result, tmp_path):
    lower_ankle = _check_in_blender(walk_result, 0, tmp_path, "walk")
    # feet on the floor (Blender's z = 0): the lower ankle joint about an ankle's height above it
    assert abs(np.median(lower_ankle) - ANKLE_HEIGHT) < 0.05, lower_ankle


@needs_blender
@pytest.mark.slow
def test_crowd_bvh_in_blender(crowd_result, tmp_path):
    _check_in_blender(crowd_result, crowd_result.main_track, tmp_path, "crowd")
