"""Long videos: every stage works on rows of person-frames, never on tracks x frames.

The memory test feeds a long scene (300 people, one after another, over 30,000 frames: dense (P, T) arrays would
take gigabytes) through tracking, lifting, the world stage, saving and loading, and bounds what numpy allocates
(tracemalloc sees numpy's buffers). The equivalence test rebuilds, from the public per-track functions on
dense arrays, what wildpose 0.1 computed, and finds the sparse pipeline's numbers equal to it on real video.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from wildpose.camera import CameraIntrinsics
from wildpose.formats.result import load_result, save_result
from wildpose.geometry import true_runs
from wildpose.lift import lift, load_lifter
from wildpose.pipeline import RunOptions, keypoints_for_lifting, lift_tracks, process_video, track_video
from wildpose.types import Camera, Detections, Result
from wildpose.world import align_world, estimate_trajectory, locate_people

# a standing person 120 px tall, COCO-17 pixel offsets from the hip centre
_TEMPLATE = np.array([[0, -100], [-3, -104], [3, -104], [-7, -101], [7, -101], [-14, -82], [14, -82],
                      [-17, -58], [17, -58], [-18, -36], [18, -36], [-8, 0], [8, 0], [-8, 32], [8, 32],
                      [-8, 62], [8, 62]], np.float32)


def _long_scene(people: int = 300, every: int = 100, frames_each: int = 60):
    """Detections of ``people`` walkers crossing one after another: (Detections, timestamps)."""
    T = people * every + frames_each
    rows = people * frames_each
    kp = np.empty((rows, 17, 3), np.float32)
    frame = np.empty(rows, np.int64)
    for i in range(people):
        n = np.arange(frames_each)
        sway = np.sin(n * 0.4)[:, None] * np.array([0.0, 3.0], np.float32)  # legs and arms move a little
        centre = np.stack([200 + 12.0 * n, np.full(frames_each, 300.0 + 120 * (i % 6))], -1)[:, None]
        r = slice(i * frames_each, (i + 1) * frames_each)
        kp[r, :, :2] = centre + _TEMPLATE[None] + sway[:, None] * (np.arange(17) >= 13)[None, :, None]
        kp[r, :, 2] = 0.8
        frame[r] = i * every + n
    lo, hi = kp[..., :2].min(1), kp[..., :2].max(1)
    boxes = np.concatenate([lo, hi, np.full((rows, 1), 0.7, np.float32)], -1)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=T))])
    return Detections.from_arrays(kp, boxes, offsets), np.arange(T) / 25.0


def test_a_long_scene_allocates_rows_not_tracks_by_frames(tmp_path):
    detections, timestamps = _long_scene()
    size = (1920, 1080)
    model = load_lifter()
    intrinsics = CameraIntrinsics.default(size)
    tracemalloc.start()
    try:
        tracks = track_video(detections, timestamps, RunOptions())
        keypoints = keypoints_for_lifting(tracks, intrinsics)
        poses = lift_tracks(tracks, size, 25.0, intrinsics, model=model, keypoints=keypoints)
        world = locate_people(tracks, keypoints, poses, size, 25.0, intrinsics)
        camera = Camera(intrinsics, False, world.rotation, world.position, world.rotations, True,
                        np.zeros(tracks.num_frames, bool))
        result = Result.from_tracks(tracks, poses, 25.0, size, trajectory=world.trajectory,
                                    poses_world=world.poses_world, camera=camera)
        save_result(result, tmp_path / "poses.npz")
        back = load_result(tmp_path / "poses.npz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    P, T = len(tracks), tracks.num_frames
    assert P == 300 and tracks.num_rows == 300 * 60 and T == 30060
    dense_bytes = P * T * 17 * 3 * 4  # one (P, T, 17, 3) float32 array of the 0.1 layout
    print(f"{P} tracks x {T} frames, {tracks.num_rows} rows: numpy peak {peak / 2**20:.0f} MiB; "
          f"one dense array would be {dense_bytes / 2**20:.0f} MiB")
    assert peak < 0.1 * dense_bytes
    # what the file holds grows with the rows: a few hundred bytes per person-frame
    assert (tmp_path / "poses.npz").stat().st_size < 800 * tracks.num_rows
    assert back.num_rows == result.num_rows and np.array_equal(back.poses_world, result.poses_world, equal_nan=True)


@pytest.fixture(scope="module")
def crowd_result(crowd_video):
    return process_video(crowd_video, RunOptions(end=2.5, static_camera=True))


def test_sparse_pipeline_equals_the_dense_computation_of_0_1(crowd_result):
    """0.1 lifted each run of a track's present frames in (P, T) arrays and aligned the (P, T) world: the
    rows hold the same numbers."""
    result, info = crowd_result
    assert len(result) >= 5
    d = result.to_dense()
    present = d["present"]
    intrinsics = result.camera.intrinsics
    keypoints = d["keypoints_2d"]  # a pinhole camera: the lifter saw them as detected
    poses = np.full(keypoints.shape, np.nan, np.float32)
    trajectory = np.full(keypoints.shape[:2] + (3,), np.nan, np.float32)
    model = load_lifter()
    for p in range(len(result)):
        for lo, hi in true_runs(present[p]):
            times = result.timestamps[lo:hi]
            poses[p, lo:hi] = lift(keypoints[p, lo:hi], info.image_size, info.fps, model=model, timestamps=times,
                                   focal_length=intrinsics.focal_length, principal_point=intrinsics.principal_point)
            trajectory[p, lo:hi] = estimate_trajectory(keypoints[p, lo:hi], info.image_size, info.fps, times,
                                                       intrinsics.focal_length,
                                                       principal_point=intrinsics.principal_point)
    np.testing.assert_array_equal(result.dense(result.poses_3d), poses)
    world, camera = align_world(poses + trajectory[:, :, None, :])
    scale = camera["person_scale"][:, None, None]
    np.testing.assert_array_equal(result.dense(result.trajectory), (trajectory * scale).astype(np.float32))
    np.testing.assert_allclose(result.dense(result.poses_world), world, atol=2e-6)
    np.testing.assert_array_equal(result.camera.rotation, camera["rotation"])
