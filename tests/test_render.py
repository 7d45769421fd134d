"""render.py on real footage: MoveNet keypoints of walk_single.mp4 and real 3D poses (the shipped lifter, or a
CMU mocap walk while no lifter is shipped), rendered, decoded back and compared with the input."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from wildpose import skeleton
from wildpose.errors import VideoError
from wildpose.lift.normalize import focal_from_fov
from wildpose.render import LEFT_COLOR, RIGHT_COLOR, draw_skeletons_2d, estimate_root_positions, render_video
from wildpose.types import Result

from conftest import dense
from wildpose.video import probe, read_frames

END = 2.4  # seconds: the first 60 frames of walk_single.mp4 (25 fps)
FPS = 25.0


# ------------------------------------------------------------------------------------------- real 3D poses

def _mocap_walk(mocap_dir: Path, T: int) -> np.ndarray:
    """(T, 17, 3) H36M joints of a real CMU walk, metres, camera axes, root-relative, facing left (-x), the
    way the man in walk_single.mp4 walks."""
    from wildpose.lift.train.rigs import load_clip

    path = mocap_dir / "cmu_motion_prediction_subset" / "test" / "walking" / "walking_1.bvh"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    clip = load_clip(path)
    step = max(1, round(clip.fps / FPS))  # 60 fps -> about the video's 25
    h36m = clip.h36m[: step * T: step].astype(np.float64)
    h36m = h36m - h36m[:, :1]
    # world Y up. Turn the walker side-on, facing -x; then to camera axes (y down, z away from the camera)
    forward = np.cross(h36m[:, 4] - h36m[:, 1], [0.0, 1.0, 0.0]).mean(0)
    yaw = np.arctan2(forward[0], forward[2])
    c, s = np.cos(-np.pi / 2 - yaw), np.sin(-np.pi / 2 - yaw)
    turn = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    h36m = h36m @ turn.T
    return (h36m * np.array([1.0, -1.0, -1.0])).astype(np.float32)


def _lifter_shipped() -> bool:
    spec = importlib.util.find_spec("wildpose")
    return (Path(next(iter(spec.submodule_search_locations))) / "models" / "lifter.safetensors").exists()


@pytest.fixture(scope="module")
def walk_result(walk_video, mocap_dir) -> Result:
    """The first 60 frames of walk_single.mp4: the real detector's best person per frame, short gaps filled
    (and marked interpolated), 3D from the shipped lifter or, until there is one, a real mocap walk."""
    from wildpose.detect2d import create_detector

    detector = create_detector("movenet")
    info = probe(walk_video)
    kps, times = [], []
    for frame in read_frames(walk_video, end=END):
        people = detector(frame.image)
        best = int(np.argmax(people.scores)) if len(people) else -1
        kps.append(people.keypoints[best] if best >= 0 else np.full((17, 3), np.nan, np.float32))
        times.append(frame.timestamp)
    kp = np.stack(kps)
    times = np.array(times)
    T = len(kp)
    detected = np.isfinite(kp[:, :, 0]).all(1)
    interpolated = np.zeros(T, bool)
    idx = np.flatnonzero(detected)
    for a, b in zip(idx[:-1], idx[1:]):  # fill gaps of up to 5 frames between detections
        if 1 < b - a <= 6:
            w = ((np.arange(a + 1, b) - a) / (b - a))[:, None, None]
            kp[a + 1:b] = (1 - w) * kp[a] + w * kp[b]
            interpolated[a + 1:b] = True
    present = np.isfinite(kp[:, :, 0]).all(1)
    poses = np.full((T, 17, 3), np.nan, np.float32)
    if _lifter_shipped():
        from wildpose.lift import lift

        run = np.flatnonzero(present)
        assert np.all(np.diff(run) == 1), "the walker should be one continuous run in these frames"
        poses[run] = lift(kp[run], info.image_size, FPS, timestamps=times[run])
        poses[run, 0] = 0.0
    else:
        poses[present] = _mocap_walk(mocap_dir, T)[present]
    return Result.from_dense(keypoints_2d=kp[None], poses_3d=poses[None], track_ids=np.array([7]),
                             timestamps=times, fps=FPS, image_size=info.image_size,
                             interpolated=interpolated[None])


# ------------------------------------------------------------------------------------------- helpers

def _skeleton_mask(keypoints: np.ndarray, shape: tuple[int, int], margin: int) -> np.ndarray:
    """Pixels within ``margin`` of any drawn joint or bone, plus the id tag's area above the head."""
    mask = np.zeros(shape, np.uint8)
    for kp in keypoints:
        ok = np.isfinite(kp[:, :2]).all(1) & (kp[:, 2] >= 0.2)
        for a, b in skeleton.COCO_BONES:
            if ok[a] and ok[b]:
                cv2.line(mask, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), 1, 1)
        for j in np.flatnonzero(ok):
            cv2.circle(mask, tuple(int(v) for v in kp[j, :2]), 1, 1, -1)
        if ok.any():
            x = int(kp[ok, 0].mean())
            top = int(kp[ok, 1].min())
            cv2.rectangle(mask, (x - 20, top - 30), (x + 20, top), 1, -1)
    return cv2.dilate(mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)).astype(bool)


def _near(img: np.ndarray, color, tol: int = 60) -> np.ndarray:
    return (np.abs(img.astype(int) - np.array(color)).max(-1) <= tol)


# ------------------------------------------------------------------------------------------- tests

def test_render_walk_side_by_side(walk_video, walk_result, tmp_path):
    out = tmp_path / "render.mp4"
    calls = []
    n = render_video(walk_video, walk_result, out, end=END, progress=lambda done, total: calls.append((done, total)))
    T = len(walk_result.timestamps)
    assert n == T == 60
    assert calls[-1] == (T, T) and len(calls) == T
    assert sorted(p.name for p in tmp_path.iterdir()) == ["render.mp4"]  # no partial file left beside it

    info = probe(out)
    src = probe(walk_video)
    assert info.fps == pytest.approx(src.fps, rel=1e-3)
    assert (info.width, info.height) == (src.width + src.height, src.height)  # input + a square 3D panel

    rendered = list(read_frames(out))
    assert len(rendered) == T
    inputs = [f.image for f in read_frames(walk_video, end=END)]
    W = src.width
    present = dense(walk_result).present[0]
    assert present.sum() >= 40 and (~present).sum() >= 1  # the walker is found in most frames, not all
    for t, (frame, image) in enumerate(zip(rendered, inputs)):
        left, right = frame.image[:, :W].astype(int), frame.image[:, W:]
        diff = np.abs(left - image.astype(int)).max(-1)
        kp = dense(walk_result).keypoints_2d[:, t]
        mask = _skeleton_mask(kp, diff.shape, margin=8)
        # far from the skeleton only the encoder's noise remains
        assert diff[~mask].mean() < 3.0, t
        assert np.quantile(diff[~mask], 0.999) < 40, t
        skeleton_px = _near(right, LEFT_COLOR).sum() + _near(right, RIGHT_COLOR).sum()
        if present[t]:
            assert (diff[mask] > 60).sum() >= 30, t  # the bones were drawn where the keypoints are
            assert _near(right, LEFT_COLOR).sum() >= 10 and _near(right, RIGHT_COLOR).sum() >= 10, t
        else:
            assert not mask.any() and skeleton_px == 0, t  # nobody: the input untouched, an empty 3D scene
    # the 3D view's camera is fixed: the grid (away from the walker) is the same in every frame
    grid_a, grid_b = rendered[0].image[:, W:].astype(int), rendered[-1].image[:, W:].astype(int)
    assert np.median(np.abs(grid_a - grid_b)) <= 2


def test_error_mid_render_leaves_no_file(walk_video, walk_result, tmp_path):
    out = tmp_path / "render.mp4"

    def fail(done, total):
        if done == 10:
            raise KeyboardInterrupt  # a user's Ctrl-C, the hardest case: not an Exception
    with pytest.raises(KeyboardInterrupt):
        render_video(walk_video, walk_result, out, end=END, progress=fail)
    assert list(tmp_path.iterdir()) == []


def test_result_of_another_length_is_refused(walk_video, walk_result, tmp_path):
    out = tmp_path / "render.mp4"
    # a 60-frame result against the whole 444-frame video
    with pytest.raises(VideoError, match="444 frames but the result has 60"):
        render_video(walk_video, walk_result, out)
    # against a longer segment than the result covers: found at the first frame without a pose
    with pytest.raises(VideoError, match=r"no pose in the result for the frame at 2\.400 s"):
        render_video(walk_video, walk_result, out, start=0.0, end=3.0)
    assert list(tmp_path.iterdir()) == []


def test_segment_by_timestamp_and_size(walk_video, walk_result, tmp_path):
    """A sub-segment of the result's frames, at half the height: frames are matched by timestamp."""
    out = tmp_path / "half.mp4"
    n = render_video(walk_video, walk_result, out, start=1.0, end=1.4, size=180)
    assert n == 10
    info = probe(out)
    assert (info.width, info.height) == (240 + 180, 180)
    frames = list(read_frames(out))
    assert len(frames) == 10
    # the 2D skeleton is drawn at the scaled positions: the left panel differs from the scaled input there
    inputs = [cv2.resize(f.image, (240, 180), interpolation=cv2.INTER_AREA)
              for f in read_frames(walk_video, start=1.0, end=1.4)]
    t0 = int(np.searchsorted(walk_result.timestamps, 1.0 - 1e-6))
    for k, (frame, image) in enumerate(zip(frames, inputs)):
        diff = np.abs(frame.image[:, :240].astype(int) - image.astype(int)).max(-1)
        mask = _skeleton_mask(dense(walk_result).keypoints_2d[:, t0 + k] * np.array([0.5, 0.5, 1]), diff.shape, 6)
        assert diff[~mask].mean() < 3.0
        if dense(walk_result).present[0, t0 + k]:
            assert (diff[mask] > 60).sum() >= 10


def test_draw_skeletons_2d_changes_only_the_skeleton(walk_result):
    t = int(np.flatnonzero(dense(walk_result).present[0] & ~dense(walk_result).interpolated[0])[0])
    kp = dense(walk_result).keypoints_2d[:, t]
    image = np.full((360, 480, 3), 128, np.uint8)
    solid = draw_skeletons_2d(image.copy(), kp, walk_result.track_ids, np.array([False]))
    dashed = draw_skeletons_2d(image.copy(), kp, None, np.array([True]))
    changed_solid = (solid != image).any(-1)
    changed_dashed = (dashed != image).any(-1)
    mask = _skeleton_mask(kp, image.shape[:2], margin=4)
    assert changed_solid.sum() > 100 and not changed_solid[~mask].any()
    assert 0 < changed_dashed.sum() < changed_solid.sum()  # dashes and no tag draw less
    assert (_near(solid, LEFT_COLOR, 10)).sum() > 10 and (_near(solid, RIGHT_COLOR, 10)).sum() > 10


def test_estimate_root_positions_recovers_a_projected_walker(mocap_dir):
    """Real mocap poses placed at known positions and projected with a pinhole camera: the weak-perspective
    estimate finds the roots to within a few percent of the depth."""
    T, size = 40, (640, 480)
    poses = _mocap_walk(mocap_dir, T)
    f = focal_from_fov(size)
    truth = np.stack([np.linspace(-2.0, 2.0, T), np.full(T, 0.6), np.linspace(6.0, 8.0, T)], -1)
    cam = poses + truth[:, None]
    uv = cam[..., :2] / cam[..., 2:] * f + np.array(size) / 2
    coco = np.full((T, 17, 3), np.nan, np.float32)
    pairs = [(5, 11), (6, 14), (7, 12), (8, 15), (9, 13), (10, 16), (11, 4), (12, 1), (13, 5), (14, 2),
             (15, 6), (16, 3), (0, 9)]
    for c, h in pairs:
        coco[:, c, :2] = uv[:, h]
        coco[:, c, 2] = 0.9
    result = Result.from_dense(keypoints_2d=coco[None], poses_3d=poses[None], track_ids=[0],
                               timestamps=np.arange(T) / 30, fps=30, image_size=size,
                               interpolated=np.zeros((1, T), bool))
    roots = estimate_root_positions(result)
    assert roots.shape == (T, 3) and roots.dtype == np.float32  # a row per row of the result
    err = np.linalg.norm(roots - truth, axis=-1)
    assert np.median(err / truth[:, 2]) < 0.05
    # a focal length twice as long puts everyone twice as far
    far = estimate_root_positions(result, focal=2 * f)
    assert np.allclose(far[:, 2], 2 * roots[:, 2], rtol=1e-4)


def test_estimate_root_positions_on_the_walk(walk_result):
    roots = walk_result.dense(estimate_root_positions(walk_result), 0)
    present = dense(walk_result).present[0]
    assert np.isfinite(roots[present]).all() and np.isnan(roots[~present]).all()
    # the man is about 60 px tall in a 480 px wide frame filmed at ~60 degrees: some 8-20 m away
    assert 6.0 < np.median(roots[present, 2]) < 25.0
    # he walks in from the right and to the left
    xs = roots[present, 0]
    assert xs[0] > 1.0 and xs[-1] - xs[0] < -0.3


def test_level_rotation_levels_a_pitched_ground():
    """Feet on a ground seen by a camera pitched 12 degrees down (display axes): turned level; a level
    ground with people at one depth is left alone."""
    from wildpose.render import _level_rotation

    rng = np.random.default_rng(0)
    x, z = rng.uniform(-5, 5, 400), rng.uniform(-25, -4, 400)
    slope = np.tan(np.radians(12.0))
    feet = np.c_[x, -1.5 + slope * z + rng.normal(0, 0.03, 400), z]
    levelled = feet @ _level_rotation(feet).T
    assert np.std(levelled[:, 1]) < 0.05 < np.std(feet[:, 1])
    flat = np.c_[x, np.full(400, -1.5), np.full(400, -8.0)]
    assert np.allclose(_level_rotation(flat), np.eye(3))
