"""Property-based tests of the numeric core: lifting, tracking, interpolation and resampling, result files.

Each property holds for every input hypothesis draws, not for a hand-picked case: lifting any track length
(1 frame, shorter than the receptive field, long), any frame rate, image size, lens and clock gives finite
poses of the right shape or a ValueError naming the argument; tracking random people who enter, leave, vanish
for a while and come back never gives one detection to two tracks and never gives two tracks one id; the
interpolation and resampling helpers reproduce their samples and never leave the range of their neighbours;
results saved and loaded again are the same arrays and metadata.

The lifting properties run the shipped lifters (the real models); tracking runs on synthetic people (a
standing body template moved, scaled and jittered), because the properties are about the bookkeeping, not
about what MoveNet sees (tests/test_track.py has the real detections). Runs are reproducible: every test
uses ``PROFILE`` (derandomised, no example database), sized so the file takes well under a minute on two cores.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wildpose.camera import CameraIntrinsics
from wildpose.errors import NoPersonError
from wildpose.export.sampling import is_uniform, uniform_grid
from wildpose.export.sampling import resample as resample_nan
from wildpose.formats import fill_single_track, load_result, load_vp3d_export, save_result, save_vp3d_export
from wildpose.formats.keypoints import load_tracks, save_tracks
from wildpose.lift import check_timestamps, lift, load_lifter, resample
from wildpose.pipeline import lift_tracks
from wildpose.track import Tracker, TrackerConfig, _covered, _interpolate, track_people
from wildpose.types import Camera, People2D, Result, Tracks

# WILDPOSE_HYPOTHESIS_SCALE=20 runs twenty times the examples (a deeper search, by hand; CI runs 1)
SCALE = max(1, int(os.environ.get("WILDPOSE_HYPOTHESIS_SCALE", "1")))
PROFILE = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.function_scoped_fixture])

# A standing person in box coordinates (0..1 across, 0..1 down), COCO-17 order.
BODY = np.array([[0.50, 0.08], [0.53, 0.06], [0.47, 0.06], [0.56, 0.07], [0.44, 0.07], [0.62, 0.20],
                 [0.38, 0.20], [0.68, 0.35], [0.32, 0.35], [0.70, 0.48], [0.30, 0.48], [0.58, 0.52],
                 [0.42, 0.52], [0.58, 0.75], [0.42, 0.75], [0.58, 0.97], [0.42, 0.97]], np.float64)


@pytest.fixture(scope="module")
def lifters():
    """The shipped lifters, each loaded once: the offline default and the causal one."""
    return {"default": load_lifter(None), "causal": load_lifter("causal")}


def _person(rng: np.random.Generator, centre, height: float, frames: int, jitter: float = 0.02) -> np.ndarray:
    """(frames, 17, 3) a body of ``height`` pixels at ``centre`` (pixels), jittered per frame, random scores."""
    xy = (BODY - [0.5, 0.5]) * [0.45 * height, height] + np.asarray(centre, np.float64)
    xy = xy + rng.normal(0.0, jitter * max(height, 1e-3), (frames, 17, 2))
    return np.concatenate([xy, rng.uniform(0.0, 1.0, (frames, 17, 1))], axis=-1).astype(np.float32)


# ============================================================================================== lifting
@st.composite
def _tracks_2d(draw):
    """(keypoints (T, 17, 2 or 3), image size, fps, timestamps or None, focal, principal point)."""
    n = draw(st.integers(1, 70))  # the shipped lifters' receptive field is 27 frames
    width, height = draw(st.integers(1, 8000)), draw(st.integers(1, 8000))
    fps = draw(st.floats(0.5, 500.0))
    where = draw(st.sampled_from(["inside", "inside", "outside", "collapsed", "tiny"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    size = max(width, height)
    if where == "outside":  # a person partly or wholly off the frame
        centre = rng.uniform(-2.0, 3.0, 2) * [width, height]
    else:
        centre = rng.uniform(0.0, 1.0, 2) * [width, height]
    person_height = {"collapsed": 0.0, "tiny": 1.0}.get(where, float(rng.uniform(0.05, 1.5) * size))
    kp = _person(rng, centre, person_height, n, jitter=0.0 if where == "collapsed" else 0.02)
    if draw(st.booleans()):
        kp = kp[..., :2]
    timestamps = None
    if draw(st.booleans()):  # a variable frame rate: steps from a tenth of a frame to seconds
        steps = rng.choice([0.1, 0.5, 1.0, 1.0, 1.0, 2.0, 20.0], size=n) / fps
        timestamps = 3.0 + np.cumsum(steps)
    focal = draw(st.one_of(st.none(), st.floats(1.0, 1e5), st.tuples(st.floats(1.0, 1e5), st.floats(1.0, 1e5))))
    principal = draw(st.one_of(st.none(), st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4))))
    return kp, (width, height), fps, timestamps, focal, principal


@settings(PROFILE, max_examples=SCALE * 50)
@given(track=_tracks_2d(), which=st.sampled_from(["default", "causal"]), flip=st.booleans(), refine=st.booleans())
def test_lift_gives_finite_poses_for_any_track(lifters, track, which, flip, refine):
    """Any length (1, 2, under the receptive field, longer), frame rate, image size, lens, clock, a person in
    the frame, off it or shrunk to a point: one finite root-relative pose per input frame."""
    kp, image_size, fps, timestamps, focal, principal = track
    poses = lift(kp, image_size, fps, focal_length=focal, model=lifters[which], timestamps=timestamps,
                 flip=flip, principal_point=principal, refine=refine)
    assert poses.shape == (len(kp), 17, 3) and poses.dtype == np.float32
    assert np.isfinite(poses).all()
    assert (poses[:, 0] == 0).all()


@settings(PROFILE, max_examples=SCALE * 25)
@given(n=st.integers(1, 60), bad=st.data())
def test_lift_refuses_missing_frames_naming_the_argument(lifters, n, bad):
    """A track with NaN or infinite keypoints in some frames is refused with a ValueError that names
    keypoints_2d and the first bad frame, never NaN poses."""
    rng = np.random.default_rng(n)
    kp = _person(rng, (320, 240), 300, n)
    frames = bad.draw(st.sets(st.integers(0, n - 1), min_size=1))
    value = bad.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    joint = bad.draw(st.integers(0, 16))
    kp[sorted(frames), joint, bad.draw(st.integers(0, 1))] = value
    with pytest.raises(ValueError, match=rf"keypoints_2d: NaN or infinity in {len(frames)} frame\(s\) "
                                         rf"\(first: {min(frames)}\)"):
        lift(kp, (640, 480), 30.0, model=lifters["default"])


@pytest.mark.parametrize("kwargs, name", [
    ({"fps": 0.0}, "fps"), ({"fps": -30.0}, "fps"), ({"fps": float("nan")}, "fps"), ({"fps": float("inf")}, "fps"),
    ({"fps": "thirty"}, "fps"), ({"image_size": (0, 480)}, "image_size"), ({"image_size": (640, -1)}, "image_size"),
    ({"image_size": (float("nan"), 480)}, "image_size"), ({"image_size": (640,)}, "image_size"),
    ({"focal_length": 0.0}, "focal_length"), ({"focal_length": (500.0, float("nan"))}, "focal_length"),
    ({"principal_point": (float("inf"), 0.0)}, "principal_point"),
    ({"timestamps": np.zeros(5)}, "timestamps"), ({"timestamps": np.arange(4.0)}, "timestamps"),
    ({"keypoints_2d": np.zeros((5, 16, 2))}, "keypoints_2d"), ({"keypoints_2d": np.zeros((0, 17, 2))}, "keypoints_2d"),
])
def test_lift_argument_errors_name_the_argument(lifters, kwargs, name):
    args = {"keypoints_2d": _person(np.random.default_rng(0), (320, 240), 300, 5), "image_size": (640, 480),
            "fps": 30.0, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name}: "):
        lift(model=lifters["default"], **args)


@st.composite
def _gappy_tracks(draw):
    """Tracks over T frames whose rows skip frames (holes a linked track leaves), at any frame rate."""
    T = draw(st.integers(1, 50))
    P = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    frames = [sorted(draw(st.sets(st.integers(0, T - 1), min_size=1, max_size=T))) for _ in range(P)]
    lengths = np.array([len(f) for f in frames], np.int64)
    keypoints = np.concatenate([_person(rng, rng.uniform(0, 640, 2), rng.uniform(20, 400), len(f)) for f in frames])
    fps = draw(st.floats(1.0, 240.0))
    timestamps = np.cumsum(rng.choice([1.0, 1.0, 2.0, 0.5], size=T)) / fps
    tracks = Tracks(np.arange(1, P + 1), lengths, np.concatenate(frames), timestamps, keypoints,
                    np.zeros(len(keypoints), bool))
    return tracks, fps


@settings(PROFILE, max_examples=SCALE * 20)
@given(data=_gappy_tracks())
def test_lift_tracks_with_missing_frames_gives_a_pose_per_row(lifters, data):
    """The pipeline's lifting of tracks with holes: every run of consecutive frames is lifted on its own clock,
    every row gets a finite pose."""
    tracks, fps = data
    poses = lift_tracks(tracks, (640, 480), fps, model=lifters["default"])
    assert poses.shape == (tracks.num_rows, 17, 3) and np.isfinite(poses).all()


@settings(PROFILE, max_examples=SCALE * 40)
@given(n=st.integers(1, 40), fps=st.floats(1e-3, 1e4), step=st.floats(-1.0, 1.0))
def test_check_timestamps(n, fps, step):
    """No timestamps: arange / fps; given ones are kept only if finite and strictly increasing."""
    assert np.array_equal(check_timestamps(None, n, fps), np.arange(n) / fps)
    times = np.arange(n) * step
    if n > 1 and step <= 0:
        with pytest.raises(ValueError, match="^timestamps: must be strictly increasing"):
            check_timestamps(times, n, fps)
    else:
        assert np.array_equal(check_timestamps(times, n, fps), times)
    with pytest.raises(ValueError, match=r"^timestamps: expected shape"):
        check_timestamps(np.arange(n + 1.0), n, fps)


# ============================================================================================== tracking
@dataclasses.dataclass
class Scene:
    frames: list[People2D]
    timestamps: np.ndarray
    size: tuple[int, int]


@st.composite
def _scenes(draw, max_frames: int = 60, max_people: int = 6):
    """Random people entering and leaving a frame, moving, missed by the detector now and then, scored high
    and low, sometimes detected twice in a frame, with a few broken detections (NaN, zero-size boxes);
    frame intervals from a 30 fps clock to pauses longer than the tracker's and linker's windows."""
    # hypothesis favours small numbers: half the scenes are long and busy on purpose
    T = draw(st.one_of(st.integers(1, max_frames), st.integers(max_frames // 2, max_frames)))
    P = draw(st.one_of(st.integers(0, max_people), st.integers(max_people // 2, max_people)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    steps = rng.choice([1 / 30, 1 / 30, 1 / 30, 1 / 25, 0.1, 0.6, 1.5, 4.0],
                       p=[0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03], size=T)
    timestamps = np.cumsum(steps) - steps[0]
    width, height = 1280, 720
    detections: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(T)]
    for _ in range(P):
        start = int(rng.integers(0, T))
        end = int(rng.integers(start + 1, T + 1))
        h = rng.uniform(30, 600)
        centre = rng.uniform([0, 0], [width, height])
        velocity = rng.uniform(-300, 300, 2)
        score = rng.uniform(0.05, 1.0)
        miss = rng.uniform(0.0, 0.5)
        for t in range(start, end):
            if rng.random() < miss:
                continue
            kp = _person(rng, centre + velocity * (timestamps[t] - timestamps[start]), h, 1)[0]
            box = np.r_[kp[:, :2].min(0) - 5, kp[:, :2].max(0) + 5,
                        np.clip(score + rng.normal(0, 0.1), 0.0, 1.0)].astype(np.float32)
            detections[t].append((kp, box))
            if rng.random() < 0.05:  # the detector found the same person twice
                detections[t].append((kp + np.float32([3, 3, 0]), box + np.float32([3, 3, 3, 3, 0])))
    for t in range(T):  # a few broken detections
        if rng.random() < 0.05:
            kp = _person(rng, rng.uniform([0, 0], [width, height]), 100, 1)[0]
            kp[rng.integers(0, 17), 0] = np.nan
            detections[t].append((kp, np.r_[kp[:, :2].min(0), kp[:, :2].max(0), 0.9].astype(np.float32)))
        if rng.random() < 0.05:
            x, y = rng.uniform([0, 0], [width, height])
            kp = np.tile(np.float32([x, y, 0.5]), (17, 1))
            detections[t].append((kp, np.float32([x, y, x, y, 0.8])))
    frames = []
    for found in detections:
        order = rng.permutation(len(found))  # a detector lists people in no particular order
        frames.append(People2D(np.array([found[i][0] for i in order], np.float32).reshape(-1, 17, 3),
                               np.array([found[i][1] for i in order], np.float32).reshape(-1, 5)))
    return Scene(frames, timestamps, (width, height))


_CONFIGS = st.builds(
    TrackerConfig,
    min_track_length=st.sampled_from([1, 3, 10]),
    max_people=st.sampled_from([None, None, 1, 2]),
    motion=st.sampled_from(["velocity", "constant"]),
    max_gap=st.sampled_from([0.0, 0.5, 2.0]),
    max_missed=st.sampled_from([0.2, 1.0, 5.0]),
    link_max_gap=st.sampled_from([0.0, 3.0, 3.0]),
)


def _valid(people: People2D, config: TrackerConfig) -> np.ndarray:
    """Detections the tracker may use: finite and scored at least low_score."""
    finite = np.isfinite(people.keypoints).all((1, 2)) & np.isfinite(people.boxes).all(1)
    return finite & (people.scores >= config.low_score)


@settings(PROFILE, max_examples=SCALE * 40)
@given(scene=_scenes(), config=_CONFIGS)
def test_online_tracker_ids(scene, config):
    """Frame by frame: ids within a frame are distinct; broken or too-low detections get -1; low-score ones only
    continue existing tracks; new tracks get the next ids in order."""
    tracker = Tracker(config)
    next_id = 0
    for people, t in zip(scene.frames, scene.timestamps):
        before = set(tracker.active_ids.tolist())
        ids = tracker.update(people, t)
        assert ids.shape == (len(people),) and ids.dtype == np.int64
        taken = ids[ids >= 0]
        assert len(np.unique(taken)) == len(taken)
        assert (ids[~_valid(people, config)] == -1).all()
        low = _valid(people, config) & (people.scores < config.min_score)
        assert all(i == -1 or i in before for i in ids[low])
        new = sorted(i for i in taken.tolist() if i >= next_id)
        assert new == list(range(next_id, next_id + len(new)))
        assert all(i in before for i in taken.tolist() if i < next_id)  # an old id is only ever a live track
        next_id += len(new)
        assert set(taken.tolist()) <= set(tracker.active_ids.tolist())


def _rows_of(tracks: Tracks, p: int) -> np.ndarray:
    return np.arange(tracks.track(p).start, tracks.track(p).stop)


@settings(PROFILE, max_examples=SCALE * 60)
@given(scene=_scenes(), config=_CONFIGS)
def test_track_people_bookkeeping(scene, config):
    """Whole video: ids unique (1..P in order of first appearance); each track in a frame at most once; every
    detected row is one of that frame's usable detections and no detection is in two tracks; interpolated rows
    lie strictly inside a track, between detections at most max_gap apart, within their range; each track
    starts and ends on a detection and has at least min_track_length of them; at most max_people tracks."""
    T = len(scene.frames)
    tracks = track_people(scene.frames, scene.timestamps, config, image_size=scene.size)
    P = len(tracks)
    assert tracks.num_frames == T
    assert tracks.track_ids.tolist() == list(range(1, P + 1))
    if config.max_people is not None:
        assert P <= config.max_people
    assert np.isfinite(tracks.keypoints_2d).all()
    firsts = [tracks.frames(p)[0] for p in range(P)]
    assert firsts == sorted(firsts)

    claimed: list[Counter] = [Counter() for _ in range(T)]
    for p in range(P):
        rows = _rows_of(tracks, p)
        frames = tracks.frame_index[rows]
        assert (np.diff(frames) > 0).all(), "a track is in each frame at most once, in time order"
        detected = ~tracks.interpolated[rows]
        assert detected[0] and detected[-1]
        assert detected.sum() >= min(config.min_track_length, T)
        for row, t in zip(rows[detected], frames[detected]):
            claimed[t][tracks.keypoints_2d[row].tobytes()] += 1
        for i in np.flatnonzero(~detected):
            before = np.flatnonzero(detected[:i])[-1]
            after = i + 1 + np.flatnonzero(detected[i + 1:])[0]
            assert frames[after] - frames[before] == after - before, "filled gaps have every frame"
            assert scene.timestamps[frames[after]] - scene.timestamps[frames[before]] <= config.max_gap + 1e-9
            lo = np.minimum(tracks.keypoints_2d[rows[before]], tracks.keypoints_2d[rows[after]])
            hi = np.maximum(tracks.keypoints_2d[rows[before]], tracks.keypoints_2d[rows[after]])
            value = tracks.keypoints_2d[rows[i]]
            assert (value >= lo - 1e-3 * (1 + abs(lo))).all() and (value <= hi + 1e-3 * (1 + abs(hi))).all()
    for t, people in enumerate(scene.frames):
        usable = _valid(people, config)
        available = Counter(k.tobytes() for k in people.keypoints[usable])
        for key, count in claimed[t].items():
            assert count <= available[key], f"frame {t}: a detection is in {count} tracks, or was never detected"


@settings(PROFILE, max_examples=SCALE * 25)
@given(scene=_scenes(max_people=3))
def test_single_mode_is_one_track_over_every_frame(scene):
    """The reference's behaviour: the best person of each frame, one track over all frames (or none)."""
    config = TrackerConfig(single=True)
    tracks = track_people(scene.frames, scene.timestamps, config)
    best = []
    for people in scene.frames:
        ok = np.flatnonzero((people.scores >= config.min_score) & np.isfinite(people.keypoints).all((1, 2)))
        best.append(people.keypoints[ok[np.argmax(people.scores[ok])]] if len(ok) else None)
    if all(b is None for b in best):
        assert len(tracks) == 0
        return
    assert tracks.track_ids.tolist() == [1] and tracks.frame_index.tolist() == list(range(len(scene.frames)))
    assert np.isfinite(tracks.keypoints_2d).all()
    for t, b in enumerate(best):
        assert tracks.interpolated[t] == (b is None)
        if b is not None:
            assert np.array_equal(tracks.keypoints_2d[t], b)


# ================================================================================ interpolation, resampling
_times = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=30, unique=True).map(
    lambda v: np.sort(np.array(v, np.float64))).filter(lambda t: len(t) < 2 or np.diff(t).min() > 1e-6)


@settings(PROFILE, max_examples=SCALE * 80)
@given(times=_times, data=st.data())
def test_lift_resample(times, data):
    """lift.resample: the samples come back at their own times, linear motion is reproduced, every value lies
    between its two neighbouring samples, and times outside the track hold its edge."""
    values = data.draw(hnp.arrays(np.float32, (len(times), 4), elements=st.floats(-1e4, 1e4, width=32)))
    assert np.allclose(resample(values, times, times), values, atol=1e-2, rtol=1e-5)
    new = np.array(data.draw(st.lists(st.floats(-2e3, 2e3), max_size=20)), np.float64)
    out = resample(values, times, new)
    assert out.shape == (len(new), 4) and out.dtype == np.float32 and np.isfinite(out).all()
    lo_t, hi_t = times[0], times[-1]
    for t, row in zip(new, out):
        if t <= lo_t:
            assert np.allclose(row, values[0])
        elif t >= hi_t:
            assert np.allclose(row, values[-1])
        else:
            k = np.searchsorted(times, t, side="right") - 1
            lo, hi = np.minimum(values[k], values[k + 1]), np.maximum(values[k], values[k + 1])
            slack = 1e-3 * (1 + np.abs(values[k]) + np.abs(values[k + 1]))
            assert (row >= lo - slack).all() and (row <= hi + slack).all()
    slope, offset = data.draw(st.floats(-10, 10)), data.draw(st.floats(-10, 10))
    line = (offset + slope * times).astype(np.float32)[:, None]
    inside = new[(new >= lo_t) & (new <= hi_t)]
    assert np.allclose(resample(line, times, inside)[:, 0], offset + slope * inside,
                       atol=1e-3 * (1 + abs(slope) * (abs(lo_t) + abs(hi_t))), rtol=1e-4)


@settings(PROFILE, max_examples=SCALE * 80)
@given(times=_times, data=st.data())
def test_export_resample_keeps_gaps(times, data):
    """export.sampling.resample: NaN outside the samples' span and next to a NaN sample (a gap stays a gap),
    exact samples at grid times that fall on one, values between neighbours elsewhere."""
    values = data.draw(hnp.arrays(np.float64, (len(times), 3), elements=st.one_of(
        st.floats(-1e4, 1e4), st.just(np.nan))))
    grid = np.array(data.draw(st.lists(st.floats(-2e3, 2e3), max_size=20)), np.float64)
    snap = data.draw(st.floats(0.0, 1.0))
    out = resample_nan(times, values, grid, snap=snap)
    assert out.shape == (len(grid), 3)
    for g, row in zip(grid, out):
        nearest = int(np.argmin(np.abs(times - g)))
        if len(times) == 1:  # one sample: only its own time has a value
            assert np.array_equal(row, values[0] if np.isclose(g, times[0]) else np.full(3, np.nan), equal_nan=True)
        elif abs(times[nearest] - g) <= snap:  # also just outside the span: a track's first or last frame
            assert np.array_equal(row, values[nearest], equal_nan=True)
        elif g < times[0] - 1e-9 or g > times[-1] + 1e-9:
            assert np.isnan(row).all()
        else:
            k = min(np.searchsorted(times, g, side="left"), len(times) - 1)
            a, b = values[k - 1], values[k]
            gap = np.isnan(a) | np.isnan(b)
            assert np.isnan(row[gap]).all()
            lo, hi = np.minimum(a, b)[~gap], np.maximum(a, b)[~gap]
            assert (row[~gap] >= lo - 1e-6 * (1 + abs(lo))).all() and (row[~gap] <= hi + 1e-6 * (1 + abs(hi))).all()


@settings(PROFILE, max_examples=SCALE * 80)
@given(times=_times, fps=st.floats(0.1, 1000.0))
def test_uniform_grid(times, fps):
    """The export grid: starts at the first frame, one period apart, ends within a period of the last frame."""
    assume((times[-1] - times[0]) * fps < 1e5)
    grid = uniform_grid(times, fps)
    assert grid[0] == times[0]
    assert np.allclose(np.diff(grid), 1 / fps, rtol=1e-6)
    assert grid[-1] <= times[-1] + 1e-6 / fps and times[-1] - grid[-1] < 1 / fps + 1e-9
    uniform = times[0] + np.arange(len(times)) / fps
    assert is_uniform(uniform, fps)


@settings(PROFILE, max_examples=SCALE * 80)
@given(data=st.data())
def test_track_gap_filling(data):
    """track._covered and _interpolate: a track's rows are its detections plus every frame of each gap of at
    most max_gap seconds, sorted; the filled keypoints are the detections at their own times and lie between
    the neighbouring detections elsewhere."""
    T = data.draw(st.integers(1, 40))
    steps = np.array(data.draw(st.lists(st.sampled_from([0.01, 0.04, 0.2, 1.0]), min_size=T, max_size=T)))
    timestamps = np.cumsum(steps)
    detected = np.array(sorted(data.draw(st.sets(st.integers(0, T - 1), min_size=1))), np.int64)
    max_gap = data.draw(st.sampled_from([0.0, 0.1, 0.5, 5.0]))
    covered = _covered(detected, timestamps, max_gap)
    assert (np.diff(covered) > 0).all() and set(detected) <= set(covered)
    assert covered[0] == detected[0] and covered[-1] == detected[-1]
    for a, b in zip(detected[:-1], detected[1:]):
        between = set(range(a + 1, b))
        filled = timestamps[b] - timestamps[a] <= max_gap + 1e-9
        assert between <= set(covered) if filled else not (between & set(covered))
    known = _person(np.random.default_rng(T), (300, 200), 200, len(detected))
    out = _interpolate(timestamps[covered], timestamps[detected], known)
    assert out.shape == (len(covered), 17, 3) and np.isfinite(out).all()
    at = np.searchsorted(covered, detected)
    assert np.array_equal(out[at], known)
    lo, hi = known.min(0), known.max(0)
    assert (out >= lo - 1e-3).all() and (out <= hi + 1e-3).all()


@settings(PROFILE, max_examples=SCALE * 40)
@given(data=st.data())
def test_fill_single_track(data):
    """The reference's 2D preparation: the top-scoring person where anyone is, interpolation between, edges
    held; NoPersonError when nobody is anywhere."""
    T = data.draw(st.integers(1, 40))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    counts = data.draw(st.lists(st.sampled_from([0, 0, 1, 1, 2, 3]), min_size=T, max_size=T))
    frames = [People2D(_person(rng, rng.uniform(0, 640, 2), 200, 1).repeat(n, 0) + rng.normal(0, 5, (n, 17, 3))
                       .astype(np.float32) * [1, 1, 0], np.c_[np.zeros((n, 4)), rng.uniform(0, 1, n)])
              for n in counts]
    if not any(counts):
        with pytest.raises(NoPersonError):
            fill_single_track(frames)
        return
    xy = fill_single_track(frames)
    assert xy.shape == (T, 17, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    found = [t for t, n in enumerate(counts) if n]
    for t in found:
        assert np.array_equal(xy[t], frames[t].keypoints[np.argmax(frames[t].scores), :, :2])
    known = xy[found]
    assert (xy >= known.min(0) - 1e-3).all() and (xy <= known.max(0) + 1e-3).all()
    assert np.array_equal(xy[:found[0]], np.broadcast_to(xy[found[0]], xy[:found[0]].shape))
    assert np.array_equal(xy[found[-1]:], np.broadcast_to(xy[found[-1]], xy[found[-1]:].shape))


@settings(PROFILE, max_examples=SCALE * 60)
@given(fps=st.floats(1e-6, 1e6))
def test_video_rate_fraction(fps):
    """The encoder's frame rate: a positive fraction within a frame in 1001 of the asked rate (NTSC rates
    exactly), or a ValueError naming fps when no such fraction exists."""
    from wildpose.video import _rate

    try:
        rate = _rate(fps)
    except ValueError as exc:
        assert str(exc).startswith("fps: ") and fps < 1.0
        return
    assert isinstance(rate, Fraction) and rate > 0
    assert abs(float(rate) - fps) <= max(1.0 / 1001, 1e-3 * fps)


# =================================================================================== result round trips
@st.composite
def _results(draw):
    """A Result with every optional part: sparse rows over T frames, trajectory, world poses, a camera,
    extras of several dtypes."""
    T = draw(st.integers(0, 15))
    P = draw(st.integers(0, 3)) if T else 0
    frames = [sorted(draw(st.sets(st.integers(0, T - 1), max_size=T))) for _ in range(P)]
    lengths = np.array([len(f) for f in frames], np.int64)
    frame_index = np.array([t for f in frames for t in f], np.int64)
    N = len(frame_index)
    floats = st.floats(width=32)  # NaN and infinities included: they must survive the round trip
    arr = lambda shape, dtype=np.float32, elements=floats: draw(hnp.arrays(dtype, shape, elements=elements))  # noqa: E731
    camera = None
    if draw(st.booleans()):
        model = draw(st.sampled_from(["pinhole", "opencv", "fisheye"]))
        n_coef = {"pinhole": 0, "opencv": draw(st.sampled_from([4, 5, 8])), "fisheye": 4}[model]
        positive = st.floats(1.0, 1e5)
        intrinsics = CameraIntrinsics(draw(positive), draw(positive), draw(st.floats(-1e4, 1e4)),
                                      draw(st.floats(-1e4, 1e4)), model,
                                      tuple(draw(st.lists(st.floats(-1, 1), min_size=n_coef, max_size=n_coef))))
        camera = Camera(intrinsics, draw(st.booleans()), arr((3, 3)), arr((3,)), arr((T, 3, 3)), draw(st.booleans()),
                        arr((T,), bool, st.booleans()))
    names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
        lambda n: not n.startswith("camera_") and n not in (
            "format_version", "track_ids", "track_lengths", "frame_index", "keypoints_2d", "poses_3d", "interpolated",
            "timestamps", "fps", "image_size", "trajectory", "poses_world", "poses_3d_camera", "focal_length_known"))
    extras = draw(st.dictionaries(names, st.one_of(
        hnp.arrays(hnp.scalar_dtypes().filter(lambda d: d.kind in "biufc"), hnp.array_shapes(min_dims=0, min_side=0)),
        hnp.arrays(hnp.unicode_string_dtypes(), hnp.array_shapes(min_dims=0, max_side=3))), max_size=3))
    return Result(draw(hnp.arrays(np.int32, (P,), unique=True)), lengths, frame_index,
                  arr((T,), np.float64, st.floats()), keypoints_2d=arr((N, 17, 3)), poses_3d=arr((N, 17, 3)),
                  interpolated=arr((N,), bool, st.booleans()), fps=draw(st.floats()),
                  image_size=arr((2,), np.int64, st.integers(-2**63, 2**63 - 1)),
                  trajectory=draw(st.one_of(st.none(), st.just((N, 3)).map(lambda s: arr(s)))),
                  poses_world=draw(st.one_of(st.none(), st.just((N, 17, 3)).map(lambda s: arr(s)))),
                  camera=camera, extras=extras)


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


@settings(PROFILE, max_examples=SCALE * 50)
@given(result=_results(), compress=st.booleans())
def test_result_round_trip_everything(result, compress):
    """save_result then load_result: every array bit-for-bit (NaN and infinities too), the dtypes the format
    promises, the camera and its lens, the extras with their own dtypes and shapes."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "poses.npz"
        save_result(result, path, compress=compress)
        back = load_result(path)
        assert sorted(p.name for p in Path(tmp).iterdir()) == ["poses.npz"], "no temporary file left behind"
    for name in ("track_ids", "track_lengths", "frame_index", "timestamps", "keypoints_2d", "poses_3d",
                 "interpolated", "image_size", "trajectory", "poses_world"):
        ours, theirs = getattr(result, name), getattr(back, name)
        assert (ours is None) == (theirs is None), name
        assert ours is None or _same(ours, theirs), name
    assert back.fps == result.fps or (math.isnan(back.fps) and math.isnan(result.fps))
    assert (back.camera is None) == (result.camera is None)
    if result.camera is not None:
        a, b = result.camera, back.camera
        assert a.intrinsics == b.intrinsics and a.static == b.static and a.focal_length_known == b.focal_length_known
        for name in ("rotation", "position", "rotations", "rotation_held"):
            assert _same(getattr(a, name), getattr(b, name)), name
    assert set(back.extras) == set(result.extras)
    for key, value in result.extras.items():
        assert _same(value, back.extras[key]), key


@settings(PROFILE, max_examples=SCALE * 30)
@given(result=_results(), fps=st.floats(allow_nan=False), size=st.tuples(st.integers(1, 10**6), st.integers(1, 10**6)))
def test_tracks_and_vp3d_round_trip(result, fps, size):
    """The 2D file (save_tracks/load_tracks) and the reference's --viz-export .npy give back what was written."""
    tracks = result.tracks()
    with tempfile.TemporaryDirectory() as tmp:
        save_tracks(tracks, fps, size, Path(tmp) / "keypoints.npz")
        back, back_fps, back_size = load_tracks(Path(tmp) / "keypoints.npz")
        save_vp3d_export(result.poses_3d, Path(tmp) / "export.npy")
        exported = load_vp3d_export(Path(tmp) / "export.npy")
    assert back_fps == fps and back_size == size
    for name in ("track_ids", "track_lengths", "frame_index", "timestamps", "keypoints_2d", "interpolated"):
        assert _same(getattr(tracks, name), getattr(back, name)), name
    assert _same(result.poses_3d, exported)
