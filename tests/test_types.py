"""wildpose.types: the sparse layout (rows of person-frames) and the compact per-frame detections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wildpose.types import Detections, People2D, Result, TrackRows, Tracks


def _people(n: int, seed: int) -> People2D:
    rng = np.random.default_rng(seed)
    return People2D(rng.uniform(0, 100, (n, 17, 3)), rng.uniform(0, 1, (n, 5)))


def test_detections_grow_and_index_like_a_list():
    frames = [_people(n, i) for i, n in enumerate([0, 3, 1, 0, 0, 5, 2] * 40)]
    det = Detections(capacity=1)
    for people in frames:
        det.append(people)
    assert len(det) == len(frames) and det.num_detections == sum(len(p) for p in frames)
    assert det.frame_offsets[-1] == det.num_detections and det.nbytes < 3 * det.num_detections * 17 * 3 * 4
    for t in (0, 1, 5, -1, len(frames) - 2):
        np.testing.assert_array_equal(det[t].keypoints, frames[t].keypoints)
        np.testing.assert_array_equal(det[t].boxes, frames[t].boxes)
    assert [len(p) for p in det] == [len(p) for p in frames]
    with pytest.raises(IndexError):
        det[len(frames)]
    again = Detections.from_arrays(det.keypoints, det.boxes, det.frame_offsets)
    assert [len(p) for p in again] == [len(p) for p in frames]
    with pytest.raises(ValueError, match="frame_offsets"):
        Detections.from_arrays(det.keypoints, det.boxes, det.frame_offsets[:-1])


@st.composite
def _dense_tracks(draw):
    P, T = draw(st.integers(0, 4)), draw(st.integers(1, 15))
    present = np.array(draw(st.lists(st.lists(st.booleans(), min_size=T, max_size=T), min_size=P, max_size=P)),
                       bool).reshape(P, T)
    kp = np.where(present[..., None, None], np.arange(P * T * 51, dtype=np.float32).reshape(P, T, 17, 3), np.nan)
    interpolated = present & np.array(draw(st.lists(st.booleans(), min_size=P * T, max_size=P * T)),
                                      bool).reshape(P, T)
    return kp, interpolated, present


@settings(max_examples=60, deadline=None)
@given(_dense_tracks())
def test_rows_and_the_dense_layout_convert_both_ways(case):
    kp, interpolated, present = case
    P, T = present.shape
    tracks = Tracks.from_dense(kp, np.arange(P) + 1, interpolated, np.arange(T) / 25.0)
    assert tracks.num_rows == present.sum() and tracks.track_lengths.tolist() == present.sum(1).tolist()
    d = tracks.to_dense()
    np.testing.assert_array_equal(d["present"], present)
    np.testing.assert_array_equal(d["keypoints_2d"], kp)
    np.testing.assert_array_equal(d["interpolated"], interpolated)
    for p in range(P):
        np.testing.assert_array_equal(tracks.frames(p), np.flatnonzero(present[p]))
        np.testing.assert_array_equal(tracks.dense(tracks.keypoints_2d, p), kp[p])
    # spans: runs of consecutive frames, every row exactly once, in order
    covered = np.concatenate([np.arange(s.start, s.stop) for _, s in tracks.spans()] or [np.zeros(0, int)])
    np.testing.assert_array_equal(covered, np.arange(tracks.num_rows))
    for p, rows in tracks.spans():
        assert (np.diff(tracks.frame_index[rows]) == 1).all() and tracks.row_track()[rows.start] == p
    # per-frame access without (P, T) arrays: frame t's rows are those with frame_index t, by track
    order, offsets = tracks.by_frame()
    for t in range(T):
        rows = order[offsets[t]:offsets[t + 1]]
        assert tracks.row_track()[rows].tolist() == np.flatnonzero(present[:, t]).tolist()


def test_layouts_that_do_not_add_up_are_refused():
    kp, no = np.zeros((3, 17, 3)), np.zeros(3, bool)
    with pytest.raises(ValueError, match="track_lengths"):
        Tracks([1, 2], [1, 1], [0, 1, 2], np.arange(5.0), kp, no)
    with pytest.raises(ValueError, match="increase"):
        Tracks([1], [3], [0, 2, 2], np.arange(5.0), kp, no)
    with pytest.raises(ValueError, match="frame_index"):
        Tracks([1], [3], [0, 1, 5], np.arange(5.0), kp, no)
    with pytest.raises(ValueError, match="keypoints_2d"):
        Tracks([1], [3], [0, 1, 2], np.arange(5.0), kp[:2], no)
    tracks = Tracks([1, 2], [2, 1], [3, 4, 0], np.arange(5.0), kp, no)  # a later track may start earlier
    assert tracks.main_track == 0 and tracks.frames(1).tolist() == [0]


def test_main_track_is_the_best_seen_person_over_the_clip():
    """The main track is whose keypoint scores add up highest over its rows (frames x how well seen), wherever
    it lies in the rows; without keypoints, the longest."""
    keypoints = np.zeros((6, 17, 3), np.float32)
    keypoints[:3, :, 2], keypoints[3:, :, 2] = 0.3, 0.8  # a partly seen bystander first, the runner second
    frames = [0, 1, 2, 0, 1, 2]
    assert Tracks([5, 6], [3, 3], frames, np.arange(3.0), keypoints, np.zeros(6, bool)).main_track == 1
    keypoints[3:, :, 2] = 0.2
    assert Tracks([5, 6], [3, 3], frames, np.arange(3.0), keypoints, np.zeros(6, bool)).main_track == 0
    # the bystander in every frame at 0.23, the runner in all but one at 0.52 (the shared crowd): the runner
    keypoints[:3, :, 2], keypoints[3:, :, 2] = 0.23, 0.52
    longer = Tracks([5, 6], [3, 2], [0, 1, 2, 0, 1], np.arange(3.0), keypoints[:5], np.zeros(5, bool))
    assert longer.main_track == 1
    keypoints[:] = np.nan  # no scores at all: the longest track
    assert Tracks([5, 6], [3, 2], [0, 1, 2, 0, 1], np.arange(3.0), keypoints[:5], np.zeros(5, bool)).main_track == 0
    assert TrackRows([5, 6], [2, 3], [0, 1, 0, 1, 2], np.arange(3.0)).main_track == 1
    assert TrackRows([5, 6], [2, 3], [0, 1, 0, 1, 2], np.arange(3.0)).seen_totals() is None


def test_result_views():
    tracks = Tracks([4, 9], [2, 3], [0, 1, 1, 2, 3], np.arange(4) / 10, np.ones((5, 17, 3)), np.zeros(5, bool))
    poses = np.arange(5 * 51, dtype=np.float32).reshape(5, 17, 3)
    trajectory = np.arange(15, dtype=np.float32).reshape(5, 3)
    result = Result.from_tracks(tracks, poses, 10.0, (64, 48), trajectory=trajectory)
    np.testing.assert_array_equal(result.poses_3d_camera, poses + trajectory[:, None])
    assert result.main_track == 1 and result.tracks().track_ids.tolist() == [4, 9]
    d = result.to_dense()
    assert d["poses_3d"].shape == (2, 4, 17, 3) and np.isnan(d["poses_3d"][0, 2:]).all()
    assert "poses_world" not in d  # absent fields are not made up
    with pytest.raises(ValueError, match="trajectory"):
        Result.from_tracks(tracks, poses, 10.0, (64, 48), trajectory=trajectory[:4])
