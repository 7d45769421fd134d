"""Tracking on real MoveNet detections of the shared videos, and on sequences built from them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wildpose.skeleton import COCO_FLIP
from wildpose.track import Tracker, TrackerConfig, box_iou, keypoint_similarity, track_people
from wildpose.types import People2D

from conftest import dense

DEFAULT = TrackerConfig()


@dataclasses.dataclass
class Detections:
    frames: list[People2D]
    timestamps: np.ndarray  # (T,) seconds
    width: int
    height: int


def _detect(path) -> Detections:
    """Every frame of a video through the real MoveNet detector, keeping candidates down to low_score.

    One full-frame pass (no tiles, no crop refinement): the tracker is what these tests examine, and the
    extra passes take five times longer."""
    from wildpose.detect2d import create_detector
    from wildpose.video import read_frames

    detector = create_detector("movenet", score_threshold=DEFAULT.low_score, refine=False, tiles=1)
    frames, timestamps = [], []
    for frame in read_frames(path):
        frames.append(detector(frame.image))
        timestamps.append(frame.timestamp)
    height, width = frame.image.shape[:2]
    return Detections(frames, np.array(timestamps), width, height)


@pytest.fixture(scope="session")
def walk_detections(walk_video) -> Detections:
    return _detect(walk_video)


@pytest.fixture(scope="session")
def crowd_detections(crowd_video) -> Detections:
    return _detect(crowd_video)


def _online_ids(det: Detections, config: TrackerConfig = DEFAULT) -> list[np.ndarray]:
    tracker = Tracker(config)
    return [tracker.update(people, t) for people, t in zip(det.frames, det.timestamps)]


@pytest.fixture(scope="session")
def walker(walk_detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The walking man's longest unbroken run of tracked detections: keypoints (L, 17, 3), boxes (L, 5),
    timestamps (L,). Material for the constructed sequences below."""
    ids = _online_ids(walk_detections)
    rows = np.array([int(np.flatnonzero(i == 0)[0]) if (i == 0).any() else -1 for i in ids])
    matched = np.concatenate([[False], rows >= 0, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(matched))
    starts, ends = edges[::2], edges[1::2]
    longest = int(np.argmax(ends - starts))
    frames = range(starts[longest], ends[longest])
    assert len(frames) >= 100, "the walker should be tracked without a break for at least 4 seconds"
    det = walk_detections
    keypoints = np.stack([det.frames[t].keypoints[rows[t]] for t in frames])
    boxes = np.stack([det.frames[t].boxes[rows[t]] for t in frames])
    return keypoints, boxes, det.timestamps[list(frames)]


def _sequence(keypoints: np.ndarray, boxes: np.ndarray, keep: np.ndarray) -> list[People2D]:
    """One person per frame where ``keep``, nobody elsewhere."""
    return [People2D(k[None], b[None]) if ok else People2D.empty() for k, b, ok in zip(keypoints, boxes, keep)]


def _mirror(keypoints: np.ndarray, boxes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The same person mirrored left-right in the image (walks the other way; left/right joints swapped)."""
    k = keypoints[:, COCO_FLIP].copy()
    k[..., 0] = width - k[..., 0]
    b = boxes.copy()
    b[:, 0], b[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return k, b


def _centres(tracks, p: int) -> np.ndarray:
    """(T,) mean x of track p's keypoints scored 0.1 or more (all keypoints where none is); NaN where absent."""
    k = tracks.keypoints_2d[p]
    confident = k[..., 2] >= 0.1
    confident[~confident.any(1)] = True
    with np.errstate(invalid="ignore"):
        return (k[..., 0] * confident).sum(1) / confident.sum(1)


# --- the real videos ------------------------------------------------------------------------------------


def test_walk_single_gives_one_track_covering_the_walker(walk_detections):
    det = walk_detections
    tracks = dense(track_people(det.frames, det.timestamps))
    assert len(tracks) == 1
    assert tracks.track_ids.tolist() == [1]
    detected = tracks.present[0] & ~tracks.interpolated[0]
    best = np.array([people.scores.max(initial=0.0) for people in det.frames])
    confident = best >= DEFAULT.min_score
    candidate = best >= DEFAULT.low_score
    # measured: 263 of 263 confident frames, 266 of 267 candidate frames, one track over frames 12-281
    assert (detected & confident).sum() >= 0.98 * confident.sum()
    assert (detected & candidate).sum() >= 0.9 * candidate.sum()
    assert not (detected & ~candidate).any()
    # the man crosses the field right to left: the track must do the same, smoothly
    x = _centres(tracks, 0)[tracks.present[0]]
    assert x[0] - x[-1] > 0.8 * det.width
    assert np.abs(np.diff(x)).max() < 20


def test_crowd_tracks_are_simultaneous_and_continuous(crowd_detections):
    det = crowd_detections
    ids = _online_ids(det)
    per_frame = np.array([(i >= 0).sum() for i in ids])
    assert per_frame.max() >= 5 and per_frame.mean() >= 3
    for frame_ids in ids:
        tracked = frame_ids[frame_ids >= 0]
        assert len(np.unique(tracked)) == len(tracked)
    # an id switch shows as a jump of the box or a change of its size between consecutive detections
    last: dict[int, tuple[int, np.ndarray, float]] = {}
    worst_jump, worst_scale, pairs = 0.0, 0.0, 0
    for t, (people, frame_ids) in enumerate(zip(det.frames, ids)):
        for d in np.flatnonzero(frame_ids >= 0):
            box = people.boxes[d]
            centre, height = (box[:2] + box[2:4]) / 2, float(box[3] - box[1])
            if frame_ids[d] in last:
                t0, c0, h0 = last[frame_ids[d]]
                worst_jump = max(worst_jump, np.linalg.norm(centre - c0) / max(h0, height) / (t - t0))
                worst_scale = max(worst_scale, abs(np.log(height / h0)))
                pairs += 1
            last[frame_ids[d]] = (t, centre, height)
    assert pairs > 300
    # measured with these detections: at most 0.17 box heights per frame and a x1.23 size change (with the
    # detector's tiles and crops: 0.20, x1.22); matching on IoU alone gives a x1.9 size change, which fails here
    assert worst_jump < 0.3
    assert worst_scale < np.log(1.5)


def test_crowd_dense_tracks(crowd_detections):
    det = crowd_detections
    tracks = dense(track_people(det.frames, det.timestamps))
    T = len(det.frames)
    assert tracks.keypoints_2d.shape == (len(tracks), T, 17, 3)
    assert len(tracks) >= 5
    assert tracks.track_ids.tolist() == list(range(1, len(tracks) + 1))
    present = tracks.present
    first = present.argmax(1)
    assert (np.diff(first) >= 0).all(), "ids follow the order of first appearance"
    assert present.sum(0).max() >= 5
    assert ((present & ~tracks.interpolated).sum(1) >= DEFAULT.min_track_length).all()
    # where present, a track holds finite numbers; where absent, only NaN
    assert np.isfinite(tracks.keypoints_2d[present]).all()
    assert np.isnan(tracks.keypoints_2d[~present]).all()
    assert not tracks.interpolated[~present].any()


def test_max_people_keeps_the_longest_tracks(crowd_detections):
    det = crowd_detections
    everyone = dense(track_people(det.frames, det.timestamps))
    lengths = np.sort(everyone.present.sum(1))[::-1]
    for n in (1, 3):
        kept = dense(track_people(det.frames, det.timestamps, dataclasses.replace(DEFAULT, max_people=n)))
        assert len(kept) == n
        assert kept.track_ids.tolist() == list(range(1, n + 1))
        assert np.sort(kept.present.sum(1))[::-1].tolist() == lengths[:n].tolist()
    assert len(dense(track_people(det.frames, det.timestamps, dataclasses.replace(DEFAULT, max_people=100)))) == len(everyone)


@pytest.mark.parametrize("video", ["walk", "crowd"])
def test_single_keeps_the_best_person_in_every_frame(video, request):
    det = request.getfixturevalue(f"{video}_detections")
    config = dataclasses.replace(DEFAULT, single=True)
    tracks = dense(track_people(det.frames, det.timestamps, config))
    assert len(tracks) == 1
    assert tracks.present[0].all(), "edges are held, gaps interpolated: every frame has a pose"
    best = [int(np.argmax(p.scores)) if len(p) and p.scores.max() >= config.min_score else -1
            for p in det.frames]
    detected = np.array(best) >= 0
    assert (tracks.interpolated[0] == ~detected).all()
    for t in np.flatnonzero(detected):
        np.testing.assert_array_equal(tracks.keypoints_2d[0, t], det.frames[t].keypoints[best[t]])
    first, last = np.flatnonzero(detected)[[0, -1]]
    np.testing.assert_array_equal(tracks.keypoints_2d[0, :first], np.broadcast_to(
        tracks.keypoints_2d[0, first], (first, 17, 3)))
    np.testing.assert_array_equal(tracks.keypoints_2d[0, last + 1:], np.broadcast_to(
        tracks.keypoints_2d[0, last], (len(det.frames) - last - 1, 17, 3)))
    # frames inside the span without a detection lie on the straight line (in time) between their neighbours
    inside = np.flatnonzero(~detected[first:last + 1]) + first
    known = np.flatnonzero(detected)
    for joint, coord in ((0, 0), (11, 1), (16, 2)):
        values = tracks.keypoints_2d[0, :, joint, coord]
        expected = np.interp(det.timestamps[inside], det.timestamps[known], values[known])
        np.testing.assert_allclose(values[inside], expected, rtol=1e-5, atol=1e-3)


# --- sequences built from the real walker ---------------------------------------------------------------


def test_short_gap_is_interpolated_and_marked(walker):
    keypoints, boxes, timestamps = walker
    keep = np.ones(len(timestamps), bool)
    keep[40:45] = False  # 0.2 s at 25 fps, below max_gap
    tracks = dense(track_people(_sequence(keypoints, boxes, keep), timestamps))
    assert len(tracks) == 1
    assert tracks.present[0].all()
    assert (tracks.interpolated[0] == ~keep).all()
    np.testing.assert_array_equal(tracks.keypoints_2d[0, keep], keypoints[keep])
    # linear in time, per coordinate, between the detections either side
    w = (timestamps[40:45] - timestamps[39]) / (timestamps[45] - timestamps[39])
    expected = keypoints[39] + w[:, None, None] * (keypoints[45] - keypoints[39])
    np.testing.assert_allclose(tracks.keypoints_2d[0, 40:45], expected, rtol=1e-5, atol=1e-3)


def test_long_gap_splits_the_track(walker):
    keypoints, boxes, timestamps = walker
    keep = np.ones(len(timestamps), bool)
    keep[40:60] = False  # 0.8 s: longer than max_gap (0.5 s), shorter than max_missed (1 s)
    frames = _sequence(keypoints, boxes, keep)
    tracks = dense(track_people(frames, timestamps, dataclasses.replace(DEFAULT, link_max_gap=0.0)))
    assert tracks.track_ids.tolist() == [1, 2]
    assert np.flatnonzero(tracks.present[0]).tolist() == list(range(40))
    assert np.flatnonzero(tracks.present[1]).tolist() == list(range(60, len(timestamps)))
    assert not tracks.interpolated.any()
    # the online tracker itself kept one id across the gap: the split is the gap rule, not a lost track
    tracker = Tracker()
    online = [tracker.update(f, t) for f, t in zip(frames, timestamps)]
    assert set(np.concatenate(online).tolist()) == {0}
    # offline linking (the default) joins the two pieces again: one id, the unseen frames a hole, not invented
    linked = track_people(frames, timestamps)
    assert linked.track_ids.tolist() == [1]
    assert linked.frame_index.tolist() == list(range(40)) + list(range(60, len(timestamps)))
    assert not linked.interpolated.any()
    assert [(rows.start, rows.stop) for _, rows in linked.spans()] == [(0, 40), (40, len(timestamps) - 20)]
    # with a longer max_gap the same gap is filled instead
    bridged = dense(track_people(frames, timestamps, dataclasses.replace(DEFAULT, max_gap=1.0)))
    assert len(bridged) == 1 and (bridged.interpolated[0] == ~keep).all()


def test_track_lost_after_max_missed(walker):
    keypoints, boxes, timestamps = walker
    keep = np.ones(len(timestamps), bool)
    keep[40:75] = False  # 1.4 s > max_missed: the tracker forgets the man and starts again
    frames = _sequence(keypoints, boxes, keep)
    tracker = Tracker()
    ids = [tracker.update(f, t) for f, t in zip(frames, timestamps)]
    assert ids[39].tolist() == [0] and ids[75].tolist() == [1]


@pytest.mark.parametrize("motion", ["velocity", "constant"])
def test_crossing_people_keep_their_ids(walker, walk_detections, motion):
    keypoints, boxes, timestamps = walker
    mirrored_k, mirrored_b = _mirror(keypoints, boxes, walk_detections.width)
    rng = np.random.default_rng(0)
    frames = []
    for t in range(len(timestamps)):
        order = rng.permutation(2)  # detection order must not carry the identity
        frames.append(People2D(np.stack([keypoints[t], mirrored_k[t]])[order],
                               np.stack([boxes[t], mirrored_b[t]])[order]))
    tracks = dense(track_people(frames, timestamps, dataclasses.replace(DEFAULT, motion=motion)))
    assert len(tracks) == 2 and tracks.present.all()
    x = np.stack([_centres(tracks, 0), _centres(tracks, 1)])
    # the two paths do cross (the check is meaningful), and each track stays on one side's path
    assert (x[0, 0] - x[1, 0]) * (x[0, -1] - x[1, -1]) < 0
    for p in range(2):
        own = keypoints if np.array_equal(tracks.keypoints_2d[p, 0], keypoints[0]) else mirrored_k
        np.testing.assert_array_equal(tracks.keypoints_2d[p], own)


def test_crossing_check_sees_a_swap(walker, walk_detections):
    """Without keypoints and without motion the same crossing swaps ids: the check above can fail."""
    keypoints, boxes, timestamps = walker
    mirrored_k, mirrored_b = _mirror(keypoints, boxes, walk_detections.width)
    frames = [People2D(np.stack([k, mk]), np.stack([b, mb]))
              for k, mk, b, mb in zip(keypoints, mirrored_k, boxes, mirrored_b)]
    tracks = dense(track_people(frames, timestamps, dataclasses.replace(DEFAULT, motion="constant", oks_weight=0.0)))
    assert len(tracks) == 2 and tracks.present.all()
    # a track that starts on one person and ends on the other
    assert any(np.array_equal(tracks.keypoints_2d[p, 0], keypoints[0])
               and np.array_equal(tracks.keypoints_2d[p, -1], mirrored_k[-1]) for p in range(2))


def test_low_score_detections_continue_but_never_start_tracks(walker):
    keypoints, boxes, timestamps = walker
    low = boxes.copy()
    low[:, 4] = (DEFAULT.low_score + DEFAULT.min_score) / 2
    dipped = boxes.copy()
    dipped[20:40, 4] = low[20:40, 4]  # the score dips for 20 frames in the middle
    keep = np.ones(len(timestamps), bool)
    assert len(dense(track_people(_sequence(keypoints, low, keep), timestamps))) == 0
    tracks = dense(track_people(_sequence(keypoints, dipped, keep), timestamps))
    assert len(tracks) == 1 and tracks.present[0].all() and not tracks.interpolated.any()
    no_second_chance = dataclasses.replace(DEFAULT, low_score=DEFAULT.min_score)
    split = dense(track_people(_sequence(keypoints, dipped, keep), timestamps, no_second_chance))
    assert not split.present[:, 20:40].any()


def test_min_track_length_drops_short_tracks(walker):
    keypoints, boxes, timestamps = walker
    boxes = boxes.copy()
    boxes[:, 4] = np.maximum(boxes[:, 4], DEFAULT.min_score)  # every frame may start a track
    keep = np.zeros(len(timestamps), bool)
    keep[10:10 + DEFAULT.min_track_length - 1] = True
    assert len(dense(track_people(_sequence(keypoints, boxes, keep), timestamps))) == 0
    keep[10 + DEFAULT.min_track_length - 1] = True
    assert len(dense(track_people(_sequence(keypoints, boxes, keep), timestamps))) == 1


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_property_spans_and_unique_ids(walker, walk_detections, data):
    """Whatever frames go missing and however uneven the clock: tracks never extend past their detections,
    interpolated frames lie strictly inside a span, detected values are the input's, ids are unique."""
    keypoints, boxes, timestamps = walker
    n = min(len(timestamps), 120)
    keypoints, boxes = keypoints[:n], boxes[:n]
    mirrored_k, mirrored_b = _mirror(keypoints, boxes, walk_detections.width)
    keep_a = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    keep_b = np.array(data.draw(st.lists(st.sampled_from([True, True, True, False]), min_size=n, max_size=n)))
    steps = np.array(data.draw(st.lists(st.sampled_from([0.02, 0.04, 0.04, 0.08, 0.3]), min_size=n, max_size=n)))
    times = np.cumsum(steps)
    frames = []
    for t in range(n):
        rows = [i for i, ok in enumerate((keep_a[t], keep_b[t])) if ok]
        frames.append(People2D(np.stack([keypoints[t], mirrored_k[t]])[rows],
                               np.stack([boxes[t], mirrored_b[t]])[rows]))
    tracker = Tracker()
    for f, t in zip(frames, times):
        ids = tracker.update(f, t)
        assert len(np.unique(ids[ids >= 0])) == (ids >= 0).sum()
    tracks = dense(track_people(frames, times, dataclasses.replace(DEFAULT, min_track_length=1)))
    inputs = [{tuple(k.ravel()) for k in f.keypoints} for f in frames]
    for p in range(len(tracks)):
        present, interpolated = tracks.present[p], tracks.interpolated[p]
        detected = present & ~interpolated
        span = np.flatnonzero(detected)
        assert np.flatnonzero(present)[[0, -1]].tolist() == span[[0, -1]].tolist()
        # inside the span a frame is absent only in a gap longer than max_gap (bridged by linking)
        for before, after in zip(span[:-1], span[1:]):
            filled = present[before:after + 1].all()
            assert filled == (times[after] - times[before] <= DEFAULT.max_gap + 1e-9) or after == before + 1
        for t in span:
            assert tuple(tracks.keypoints_2d[p, t].ravel()) in inputs[t]
        for t in np.flatnonzero(interpolated):  # every filled gap is at most max_gap long
            before, after = span[span < t][-1], span[span > t][0]
            assert times[after] - times[before] <= DEFAULT.max_gap + 1e-9
    # no two tracks claim the same detection
    for t in range(n):
        claimed = [tuple(tracks.keypoints_2d[p, t].ravel()) for p in range(len(tracks))
                   if tracks.present[p, t] and not tracks.interpolated[p, t]]
        assert len(set(claimed)) == len(claimed)


# --- small pieces -----------------------------------------------------------------------------------------


def test_box_iou_and_keypoint_similarity(walker):
    keypoints, boxes, _ = walker
    iou = box_iou(boxes[:3], boxes[:3])
    np.testing.assert_allclose(np.diag(iou), 1.0)
    assert box_iou(boxes[:1], boxes[:1] + np.array([1000, 0, 1000, 0, 0]))[0, 0] == 0.0
    areas = (boxes[:2, 2] - boxes[:2, 0]) * (boxes[:2, 3] - boxes[:2, 1])
    oks, shared = keypoint_similarity(keypoints[:2], keypoints[:2], areas)
    np.testing.assert_allclose(np.diag(oks), 1.0)
    assert shared.all()
    far = keypoints[:1].copy()
    far[..., 0] += 100
    assert keypoint_similarity(keypoints[:1], far, areas[:1])[0][0, 0] < 1e-6


def test_nobody_and_bad_input():
    timestamps = np.arange(5) / 25
    tracks = dense(track_people([People2D.empty()] * 5, timestamps))
    assert len(tracks) == 0 and tracks.keypoints_2d.shape == (0, 5, 17, 3)
    assert len(dense(track_people([People2D.empty()] * 5, timestamps, TrackerConfig(single=True)))) == 0
    with pytest.raises(ValueError, match="timestamps"):
        dense(track_people([People2D.empty()] * 5, timestamps[:4]))
    with pytest.raises(ValueError, match="increasing"):
        dense(track_people([People2D.empty()] * 5, timestamps[::-1]))
    tracker = Tracker()
    tracker.update(People2D.empty(), 1.0)
    with pytest.raises(ValueError, match="increase"):
        tracker.update(People2D.empty(), 1.0)
    for bad in (dict(low_score=0.5), dict(max_cost=0.0), dict(motion="kalman"), dict(max_people=0),
                dict(min_track_length=0), dict(iou_weight=0.0, oks_weight=0.0), dict(max_gap=-1.0)):
        with pytest.raises(ValueError):
            TrackerConfig(**bad)
