"""wildpose.camera_motion: a turning camera's rotation from real pixels (a real image seen through known
rotations, the two shared videos), and what it does to the walker's world trajectory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wildpose.camera import CameraIntrinsics
from wildpose.camera_motion import (CameraMotion, CameraMotionEstimator, estimate_camera_motion,
                                    fit_rotation, person_boxes)
from wildpose.types import People2D


def _rot(axis: str, deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a @ b.T) - 1) / 2, -1, 1))))


@pytest.fixture(scope="module")
def crowd_frame(crowd_video):
    """The first frame of the marathon video: (540, 960, 3) real pixels with buildings, trees and people."""
    from wildpose.video import read_frames

    return next(iter(read_frames(crowd_video))).image


def _turning_camera(image, pan_deg, tilt_deg, roll_deg, frames, size=(640, 360)):
    """Frames of a camera that turns from the view of ``image`` (its own 60-degree camera, centre crop of
    ``size``): rotations[t] = camera-t-from-camera-0, pixels u_t ~ K R_t K^-1 u_0."""
    import cv2

    h, w = image.shape[:2]
    src = CameraIntrinsics.default((w, h))
    K_src = src.matrix
    K_out = np.array([[src.fx, 0, size[0] / 2], [0, src.fy, size[1] / 2], [0, 0, 1]])
    rotations, out = [], []
    for t in range(frames):
        s = t / (frames - 1)
        # pan right (the optical axis towards +x of frame 0), tilt up, roll: R_t^T = turn, R_t = turn^T
        turn = _rot("y", pan_deg * s) @ _rot("x", tilt_deg * s) @ _rot("z", roll_deg * s)
        R = turn.T
        homography = K_out @ R @ np.linalg.inv(K_src)  # source pixels -> frame-t pixels
        out.append(cv2.warpPerspective(image, homography, size, flags=cv2.INTER_LINEAR))
        rotations.append(R)
    return out, np.array(rotations), CameraIntrinsics(src.fx, src.fy, size[0] / 2, size[1] / 2)


def test_fit_rotation_recovers_a_rotation_among_outliers():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(120, 3)) * [0.3, 0.2, 0.0] + [0, 0, 1]
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    R = _rot("y", 2.0) @ _rot("x", -0.7)
    b = a @ R.T + rng.normal(scale=2e-4, size=a.shape)
    b[:40] = a[:40]  # a third of the points stay put in the image (a logo, a speck on the lens)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    fit, inliers = fit_rotation(a, b, 0.004)
    assert _angle_deg(fit, R) < 0.02
    assert not inliers[:40].any() and inliers[40:].mean() > 0.95


def test_recovers_a_known_pan_tilt_roll_from_real_pixels(crowd_frame):
    frames, truth, intrinsics = _turning_camera(crowd_frame, 20.0, 4.0, 2.0, 60)
    estimator = CameraMotionEstimator(intrinsics)
    for image in frames:
        estimator.update(image)
    motion = estimator.result()
    assert len(motion) == 60 and not motion.held.any()
    errors = np.array([_angle_deg(motion.rotations[t], truth[t]) for t in range(60)])
    print(f"synthetic 20 deg pan + 4 tilt + 2 roll over 60 frames: max error {errors.max():.3f} deg, "
          f"last {errors[-1]:.3f} deg, median inliers {np.median(motion.inliers[1:]):.0f}")
    assert errors.max() < 0.3
    assert motion.pan_tilt_deg[-1] == pytest.approx([20.0, 4.0], abs=0.3)
    assert not motion.is_static()
    assert np.allclose(motion.rotations[0], np.eye(3))
    assert np.allclose(motion.rotations @ motion.rotations.transpose(0, 2, 1), np.eye(3), atol=1e-9)


def test_static_camera_with_a_masked_moving_person(crowd_frame):
    """The same view repeated while a bright 'person' patch slides across it: with its box given, the camera
    is static; a blank frame (a cut) holds the rotation and is flagged."""
    image = crowd_frame[100:460, 100:740].copy()
    patch = np.ascontiguousarray(crowd_frame[200:420, 760:880])  # a real textured block of runners
    estimator = CameraMotionEstimator()
    for t in range(40):
        frame = image.copy()
        x = 40 + 12 * t
        frame[80:300, x:x + 120] = patch
        estimator.update(frame, np.array([[x, 80, x + 120, 300, 0.9]]))
        if t == 20:
            estimator.update(np.zeros_like(image))
    motion = estimator.result()
    print(f"static: max angle {motion.max_angle_deg:.4f} deg; held frames {np.flatnonzero(motion.held)}")
    assert motion.is_static() and motion.max_angle_deg < 0.05
    # the blank frame 21 fails, and so does 22 (a blank frame gives no points to track from)
    assert np.flatnonzero(motion.held).tolist() == [21, 22]


def test_person_boxes_join_the_box_and_the_keypoints():
    kp = np.zeros((2, 17, 3), np.float32)
    kp[0, :, :2] = [[10 + i, 20 + 2 * i] for i in range(17)]
    kp[0, :, 2] = 0.9
    kp[0, 5, :] = [200, 5, 0.05]  # too uncertain to count
    people = People2D(kp, np.array([[12, 30, 40, 60, 0.8], [5, 6, 7, 8, 0.3]]))
    boxes = person_boxes(people)
    assert boxes.tolist() == [[10, 20, 40, 60], [5, 6, 7, 8]]


def test_input_checks():
    estimator = CameraMotionEstimator()
    estimator.update(np.zeros((40, 60), np.uint8))
    with pytest.raises(ValueError, match="first frame was 60x40"):
        estimator.update(np.zeros((40, 61), np.uint8))
    with pytest.raises(ValueError, match="image"):
        estimator.update(np.zeros((40, 60, 2), np.uint8))
    with pytest.raises(ValueError, match="boxes"):
        estimator.update(np.zeros((40, 60), np.uint8), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="rotations"):
        CameraMotion(np.zeros((3, 3)), [0], [0], [False])


@pytest.fixture(scope="module")
def walk_run(walk_video):
    """walk_single.mp4 through the pipeline's stages once, with the camera estimated in the detection pass."""
    from wildpose.pipeline import (camera_for, detect_video, keypoints_for_lifting, lift_tracks, RunOptions,
                                   track_video)

    options = RunOptions()
    estimator = CameraMotionEstimator(lambda size: camera_for(options, size))
    people, timestamps, info = detect_video(walk_video, camera_motion=estimator)
    tracks = track_video(people, timestamps, options)
    intrinsics = camera_for(options, info.image_size)
    keypoints = keypoints_for_lifting(tracks, intrinsics)
    poses = lift_tracks(tracks, info.image_size, info.fps, intrinsics=intrinsics, keypoints=keypoints)
    return estimator.result(), tracks, keypoints, poses, info, people


def _speeds(world_root: np.ndarray, times: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal speed (m/s) over ``window`` frames, and the window's start frame."""
    ok = np.isfinite(world_root).all(-1)
    start = np.flatnonzero(ok[:-window] & ok[window:])
    d = np.linalg.norm(world_root[start + window][:, [0, 2]] - world_root[start][:, [0, 2]], axis=-1)
    return d / (times[start + window] - times[start]), start


def test_walk_video_pans_and_compensation_steadies_the_walk(walk_run):
    """The camera turns left to follow the walker for the first ~3 s, then holds. Without compensation his
    world speed drops while the camera follows him; with it, his speed stays the same over the whole walk
    (a man walking across a field at a steady pace)."""
    from wildpose.world import locate_people

    motion, tracks, keypoints, poses, info, _ = walk_run
    pan, tilt = motion.pan_tilt_deg[:, 0], motion.pan_tilt_deg[:, 1]
    print(f"walk_single: turns up to {motion.max_angle_deg:.2f} deg, pan at 3 s {pan[75]:.2f}, at the end "
          f"{pan[-1]:.2f}, tilt at the end {tilt[-1]:.2f}; held {motion.held.sum()}, median inliers "
          f"{np.median(motion.inliers[1:]):.0f}")
    assert not motion.is_static()
    assert pan[75] < -4.0 and abs(pan[-1] - pan[100]) < 1.5  # turns left while following, then (nearly) holds
    main = tracks.main_track
    results = {}
    for name, rotations in (("turning", motion.rotations), ("static", None)):
        placed = locate_people(tracks, keypoints, poses, info.image_size, info.fps, camera_rotations=rotations)
        speed, start = _speeds(tracks.dense(placed.poses_world, main)[:, 0], tracks.timestamps, 25)
        first = start[0]
        early = np.median(speed[start < first + 50])  # his first 2 s: the camera turns with him
        late = np.median(speed[start >= first + 75])  # after it stopped turning
        results[name] = (early, late, early / late)
        print(f"{name}: speed while the camera follows {early:.2f} m/s, afterwards {late:.2f} m/s, "
              f"ratio {early / late:.2f}")
    assert abs(results["turning"][2] - 1.0) < abs(results["static"][2] - 1.0) - 0.05
    assert 0.8 < results["turning"][0] < 2.0 and 0.8 < results["turning"][1] < 2.0


def test_walk_video_through_process_video(walk_video):
    """The pipeline records the rotations; frame t's world-from-camera is camera_rotation @ R_t^T."""
    from wildpose.pipeline import RunOptions, process_video

    result, info = process_video(walk_video, RunOptions(end=4))
    camera = result.camera
    T = result.num_frames
    assert camera.rotations.shape == (T, 3, 3) and camera.rotations.dtype == np.float32
    assert not camera.static and camera.rotation_held.shape == (T,)
    rows = result.track(result.main_track)
    last = rows.start + np.flatnonzero(np.isfinite(result.poses_world[rows]).all((-1, -2)))[-1]
    t = result.frame_index[last]
    world_from_cam = camera.world_from_camera(t)
    assert np.allclose(world_from_cam, camera.rotation @ camera.rotations[t].T)
    cam = result.poses_3d_camera[last]  # camera axes of frame t
    expected = cam @ world_from_cam.T + camera.position
    assert np.allclose(result.poses_world[last], expected, atol=1e-3)
    static, _ = process_video(walk_video, RunOptions(end=4, static_camera=True))
    assert static.camera.static
    assert np.array_equal(static.camera.rotations, np.broadcast_to(np.eye(3, dtype=np.float32), (T, 3, 3)))


def test_marathon_crowd_camera(crowd_video):
    """The marathon camera is hand-held: it drifts about a degree over 4.6 s (measured, reported here)."""
    from wildpose.pipeline import detect_video

    estimator = CameraMotionEstimator()
    people, _, _ = detect_video(crowd_video, camera_motion=estimator)
    motion = estimator.result()
    pan, tilt = motion.pan_tilt_deg[-1]
    print(f"marathon_crowd: max angle {motion.max_angle_deg:.2f} deg (pan {pan:.2f}, tilt {tilt:.2f}); static: "
          f"{motion.is_static()}; held {motion.held.sum()}; median inliers {np.median(motion.inliers[1:]):.0f}")
    assert not motion.held.any() and motion.max_angle_deg < 3.0
    # the same through the convenience function, given the people found above
    again = estimate_camera_motion(crowd_video, people=people)
    assert np.allclose(again.rotations, motion.rotations)
