"""wildpose.formats: poses.npz, the reference's files, and refusing pickles that would run code.

Real data: the 2D keypoints come from MoveNet (wildpose.detect2d) run on frames of the shared
walk_single.mp4 (one walker, frames with and without detections) and marathon_crowd.mkv (several people).
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from wildpose.errors import FormatError, NoPersonError
from wildpose.formats import (
    fill_single_track,
    load_result,
    load_vp3d_export,
    read_custom_dataset,
    read_detectron_npz,
    safe_load_npz,
    save_result,
    save_vp3d_export,
    write_custom_dataset,
    write_detectron_npz,
)
from wildpose.formats.result import RESULT_KEYS
from wildpose.formats.safe_pickle import pickle_array, safe_unpickle
from wildpose.types import People2D, Result

WALK_W, WALK_H = 480, 360


def _detect(video: Path, start: float, end: float) -> list[People2D]:
    from wildpose.detect2d import create_detector
    from wildpose.video import read_frames

    detector = create_detector("movenet", num_threads=2)
    return [detector(frame.image) for frame in read_frames(video, start=start, end=end)]


@pytest.fixture(scope="module")
def walk_people(walk_video) -> list[People2D]:
    """MoveNet on walk_single.mp4 0.32-1.6 s: the walker is found in some frames and missed in others."""
    people = _detect(walk_video, 0.32, 1.6)
    found = [len(p) > 0 for p in people]
    assert any(found) and not all(found), "the window was chosen to contain both (see the module docstring)"
    return people


@pytest.fixture(scope="module")
def crowd_people(crowd_video) -> list[People2D]:
    people = _detect(crowd_video, 0.0, 0.2)
    assert max(len(p) for p in people) > 1
    return people


# --- the reference's Detectron detections ------------------------------------------------------------

def _assert_same_people(a: list[People2D], b: list[People2D]) -> None:
    assert len(a) == len(b)
    for pa, pb in zip(a, b):
        np.testing.assert_array_equal(pa.keypoints, pb.keypoints)
        np.testing.assert_array_equal(pa.boxes, pb.boxes)


@pytest.mark.parametrize("which", ["walk_people", "crowd_people"])
def test_detectron_round_trip(which, request, tmp_path):
    people = request.getfixturevalue(which)
    path = tmp_path / "video.mp4.npz"
    write_detectron_npz(path, people, WALK_W, WALK_H)
    back, metadata = read_detectron_npz(path)
    _assert_same_people(people, back)
    assert metadata == {"w": WALK_W, "h": WALK_H}
    assert [p.name for p in tmp_path.iterdir()] == ["video.mp4.npz"]  # no temporary left behind


def test_detectron_file_has_the_reference_layout(walk_people, tmp_path):
    """Read it the way the reference's prepare_data_2d_custom.py does (plain numpy, allow_pickle=True)."""
    path = tmp_path / "walk.mp4.npz"
    write_detectron_npz(path, walk_people, WALK_W, WALK_H)
    data = np.load(path, encoding="latin1", allow_pickle=True)
    assert sorted(data.files) == ["boxes", "keypoints", "metadata", "segments"]
    bb, kp = data["boxes"], data["keypoints"]
    assert data["metadata"].item() == {"w": WALK_W, "h": WALK_H}
    assert list(data["segments"]) == [None] * len(walk_people)
    assert len(bb) == len(kp) == len(walk_people)
    for i, people in enumerate(walk_people):
        assert len(bb[i][0]) == 0 and len(kp[i][0]) == 0  # Detectron's background class
        if len(people) == 0:
            assert len(bb[i][1]) == 0 and len(kp[i][1]) == 0
            continue
        best = np.argmax(bb[i][1][:, 4])
        rows = kp[i][1][best].T  # (17, 4): x, y, logit, prob
        assert rows.shape == (17, 4)
        np.testing.assert_array_equal(rows[:, :2], people.keypoints[best, :, :2])
        np.testing.assert_array_equal(rows[:, 2], 0)
        np.testing.assert_array_equal(rows[:, 3], people.keypoints[best, :, 2])
        np.testing.assert_array_equal(bb[i][1][best, :4], people.boxes[best, :4])


def _globals_in_pickles(path: Path) -> set[str]:
    names = set()
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            raw = io.BytesIO(zf.read(name))
            np.lib.format.read_magic(raw)
            _, _, dtype = np.lib.format.read_array_header_1_0(raw)
            if dtype.hasobject:
                names |= {arg.replace(" ", ".") for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"}
    return names


def test_written_pickles_name_only_numpy_1x_compatible_globals(walk_people, tmp_path):
    """NumPy 2's own pickles say numpy._core, which NumPy 1.x (the reference's users) cannot import."""
    write_detectron_npz(tmp_path / "d.npz", walk_people, WALK_W, WALK_H)
    write_custom_dataset(tmp_path / "c.npz", {"walk.mp4": fill_single_track(walk_people)},
                         {"walk.mp4": {"w": WALK_W, "h": WALK_H}})
    for name in ("d.npz", "c.npz"):
        assert _globals_in_pickles(tmp_path / name) == {
            "numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}


def _object_array(*items) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    return arr


def test_reads_detectron_files_written_by_numpy_itself(walk_people, tmp_path):
    """Another writer's layout: per-frame Python lists, Detectron-1 style keypoints (a list of (4, 17)),
    pickled by numpy's own pickler (numpy._core globals)."""
    boxes, keypoints = [], []
    for people in walk_people:
        if len(people):
            rows = [np.stack([k[:, 0], k[:, 1], np.zeros(17, np.float32), k[:, 2]]) for k in people.keypoints]
            boxes.append([[], people.boxes.astype(np.float64)])
            keypoints.append([[], rows])
        else:
            boxes.append([[], []])
            keypoints.append([[], []])
    path = tmp_path / "numpy_written.npz"
    np.savez_compressed(path, boxes=_object_array(*boxes), keypoints=_object_array(*keypoints),
                        segments=_object_array(*[None] * len(boxes)),
                        metadata=np.array({"w": np.int64(WALK_W), "h": WALK_H}, dtype=object))
    back, metadata = read_detectron_npz(path)
    _assert_same_people(walk_people, back)
    assert metadata == {"w": WALK_W, "h": WALK_H} and type(metadata["w"]) is int


@pytest.mark.parametrize("change, match", [
    (lambda d: d.pop("keypoints"), "missing 'keypoints'"),
    (lambda d: d.update(metadata=np.array([640, 480])), "one pickled object"),
    (lambda d: d.update(metadata=np.array({"w": 640}, dtype=object)), "'w' and 'h'"),
    (lambda d: d.update(boxes=d["boxes"][:-1]), "differ"),
    (lambda d: d.update(boxes=np.array(3.0)), "one entry per frame"),
    (lambda d: d["boxes"].__setitem__((0, 1), np.zeros((1, 4), np.float32)), r"expected \(K, 5\)"),
    (lambda d: d["keypoints"].__setitem__((0, 1), np.zeros((1, 17, 4), np.float32)), r"expected \(1, 4, 17\)"),
    (lambda d: d["boxes"].__setitem__((0, 1), ["a", "b"]), "not numeric"),
    (lambda d: d.update(boxes=_object_array("x", [[], []])), "per-class list"),
])
def test_malformed_detectron_content(change, match, tmp_path):
    people = [People2D(np.ones((1, 17, 3)), [[0, 0, 1, 1, 0.9]]), People2D.empty()]
    write_detectron_npz(tmp_path / "ok.npz", people, 640, 480)
    data = safe_load_npz(tmp_path / "ok.npz")
    change(data)
    path = _npz_with(tmp_path / "bad.npz", **data)
    with pytest.raises(FormatError, match=match) as info:
        read_detectron_npz(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_safe_unpickle_reads_every_protocol(protocol, crowd_people):
    frame = next(p for p in crowd_people if len(p) > 1)
    value = _object_array([[], frame.boxes], {"w": 960, "k": frame.keypoints}, None, (1, 2.5, "x", b"\x00"))
    back = safe_unpickle(io.BytesIO(pickle.dumps(value, protocol=protocol)))
    assert back.shape == (4,) and back.dtype == object
    np.testing.assert_array_equal(back[0][1], frame.boxes)
    assert back[0][1].dtype == np.float32 and back[0][1].flags.writeable
    np.testing.assert_array_equal(back[1]["k"], frame.keypoints)
    assert back[2] is None and back[3] == (1, 2.5, "x", b"\x00")
    # and what we write reads back the same way
    again = safe_unpickle(io.BytesIO(pickle_array(value)))
    np.testing.assert_array_equal(again[1]["k"], frame.keypoints)


def test_fill_single_track_keeps_best_and_interpolates_gaps(walk_people):
    xy = fill_single_track(walk_people)
    T = len(walk_people)
    assert xy.shape == (T, 17, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    found = [t for t, p in enumerate(walk_people) if len(p)]
    for t in found:
        best = int(np.argmax(walk_people[t].scores))
        np.testing.assert_array_equal(xy[t], walk_people[t].keypoints[best, :, :2])
    # before the first detection: held; inside a gap: on the line between the detections either side
    np.testing.assert_array_equal(xy[: found[0]], np.broadcast_to(xy[found[0]], (found[0], 17, 2)))
    np.testing.assert_array_equal(xy[found[-1]:], np.broadcast_to(xy[found[-1]], (T - found[-1], 17, 2)))
    gaps = [(a, b) for a, b in zip(found, found[1:]) if b - a > 1]
    assert gaps, "the walk window has a gap between detections"
    for a, b in gaps:
        for t in range(a + 1, b):
            w = (t - a) / (b - a)
            np.testing.assert_allclose(xy[t], (1 - w) * xy[a] + w * xy[b], rtol=1e-6, atol=1e-3)


def test_fill_single_track_takes_the_top_scoring_person(crowd_people):
    xy = fill_single_track(crowd_people)
    for t, people in enumerate(crowd_people):
        best = people.keypoints[int(np.argmax(people.scores)), :, :2]
        np.testing.assert_array_equal(xy[t], best)


def test_fill_single_track_without_anyone():
    with pytest.raises(NoPersonError):
        fill_single_track([People2D.empty()] * 5)


# --- the reference's custom 2D dataset ---------------------------------------------------------------

def test_custom_dataset_is_what_the_reference_loads(walk_people, crowd_people, tmp_path):
    positions = {"walk.mp4": fill_single_track(walk_people), "crowd.mkv": fill_single_track(crowd_people)}
    sizes = {"walk.mp4": {"w": WALK_W, "h": WALK_H}, "crowd.mkv": {"w": 960, "h": 540}}
    path = tmp_path / "data_2d_custom_mine.npz"
    write_custom_dataset(path, positions, sizes)

    # exactly as the reference's run.py and custom_dataset.py read it
    data = np.load(path, allow_pickle=True)
    assert sorted(data.files) == ["metadata", "positions_2d"]
    metadata = data["metadata"].item()
    assert metadata == {
        "layout_name": "coco",
        "num_joints": 17,
        "keypoints_symmetry": [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]],
        "video_metadata": sizes,
    }
    assert type(metadata["video_metadata"]["walk.mp4"]["w"]) is int
    kps_left, kps_right = list(metadata["keypoints_symmetry"][0]), list(metadata["keypoints_symmetry"][1])
    assert len(kps_left) == len(kps_right) == 8
    keypoints = data["positions_2d"].item()
    assert set(keypoints) == set(positions)
    for name, xy in positions.items():
        assert set(keypoints[name]) == {"custom"}
        cams = keypoints[name]["custom"]
        assert type(cams) is list and len(cams) == 1
        assert cams[0].dtype == np.float32 and cams[0].shape == xy.shape
        np.testing.assert_array_equal(cams[0], xy)
        # run.py normalises in place and stores back into the list
        w, h = sizes[name]["w"], sizes[name]["h"]
        cams[0][..., :2] = cams[0][..., :2] / w * 2 - [1, h / w]
        keypoints[name]["custom"][0] = cams[0]

    back, back_meta = read_custom_dataset(path)
    assert back_meta == metadata
    assert set(back) == set(positions)
    for name in positions:
        np.testing.assert_array_equal(back[name], positions[name])


def test_custom_dataset_from_our_detectron_file(walk_people, tmp_path):
    """The reference's whole 2D preparation on files we wrote: detections -> one track -> dataset."""
    det = tmp_path / "walk.mp4.npz"
    write_detectron_npz(det, walk_people, WALK_W, WALK_H)
    people, meta = read_detectron_npz(det)
    write_custom_dataset(tmp_path / "ds.npz", {det.stem: fill_single_track(people)}, {det.stem: meta})
    positions, _ = read_custom_dataset(tmp_path / "ds.npz")
    np.testing.assert_array_equal(positions["walk.mp4"], fill_single_track(walk_people))


def test_write_custom_dataset_rejects_what_the_reference_cannot_use(walk_people, tmp_path):
    xy = fill_single_track(walk_people)
    with pytest.raises(ValueError, match="NaN"):
        write_custom_dataset(tmp_path / "x.npz", {"a": np.where(np.arange(len(xy))[:, None, None] == 3, np.nan, xy)},
                             {"a": {"w": 1, "h": 1}})
    with pytest.raises(ValueError, match="different videos"):
        write_custom_dataset(tmp_path / "x.npz", {"a": xy}, {"b": {"w": 1, "h": 1}})
    with pytest.raises(ValueError, match=r"\(T, 17, 2\)"):
        write_custom_dataset(tmp_path / "x.npz", {"a": xy[:, :16]}, {"a": {"w": 1, "h": 1}})
    assert not list(tmp_path.iterdir())


# --- hostile files -----------------------------------------------------------------------------------

class _Call:
    """Pickles as a call of ``func(*args)``: what a malicious file would contain."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _npz_with(path: Path, **members) -> Path:
    """An npz written by numpy's own pickler (so payloads are pickled exactly as an attacker would)."""
    np.savez(path, **members)
    return path


def _hostile_detectron(path: Path, payload) -> Path:
    boxes = _object_array([[], np.zeros((1, 5), np.float32)], [[], payload])
    keypoints = _object_array([[], np.zeros((1, 4, 17), np.float32)], [[], []])
    return _npz_with(path, boxes=boxes, keypoints=keypoints, metadata=np.array({"w": 4, "h": 4}, dtype=object))


def test_payload_that_would_create_a_file_is_refused(tmp_path):
    target = tmp_path / "pwned"
    for i, payload in enumerate([_Call(os.system, f"touch {target}"), _Call(open, str(target), "w")]):
        path = _hostile_detectron(tmp_path / f"evil{i}.npz", payload)
        with pytest.raises(FormatError, match="refused pickled global") as info:
            read_detectron_npz(path)
        assert str(path) in str(info.value)
        assert not target.exists()
    # the same payload, deep inside the custom dataset's nested dicts
    positions = np.array({"v": {"custom": [_Call(os.system, f"touch {target}")]}}, dtype=object)
    path = _npz_with(tmp_path / "evil_ds.npz", positions_2d=positions, metadata=np.array({}, dtype=object))
    with pytest.raises(FormatError, match=r"refused pickled global (os|posix)\.system"):
        read_custom_dataset(path)
    assert not target.exists()


@pytest.mark.parametrize("payload, name", [
    (_Call(eval, "1 + 1"), "builtins.eval"),
    (_Call(exec, "x = 1"), "builtins.exec"),
    (_Call(subprocess.Popen, ["true"]), "subprocess.Popen"),
    (_Call(__import__("functools").partial, print, 1), "functools.partial"),
    (_Call(getattr, 1, "real"), "builtins.getattr"),
    (_Call(__import__, "os"), "builtins.__import__"),
])
def test_dangerous_globals_are_refused(payload, name, tmp_path):
    path = _npz_with(tmp_path / "evil.npz", metadata=np.array({"w": payload}, dtype=object))
    with pytest.raises(FormatError, match=f"refused pickled global {name}"):
        safe_load_npz(path)


def _npy_member(path: Path, header_dtype: str, pickle_bytes: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        with zf.open("x.npy", "w") as fp:
            np.lib.format.write_array_header_1_0(
                fp, {"descr": header_dtype, "fortran_order": False, "shape": (1,)})
            fp.write(pickle_bytes)
    return path


class _ForgedDtype:
    """An object dtype whose pickled state clears its 'holds objects' flag."""

    def __reduce__(self):
        return np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 0)


class _ForgedArray:
    """An object array whose items are raw bytes, i.e. pointers chosen by the file: plain np.load would
    dereference 0x4141414141414141."""

    def __reduce__(self):
        reconstruct = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, wherever this numpy keeps it
        return (reconstruct, (np.ndarray, (0,), b"b"),
                (1, (1,), _ForgedDtype(), False, b"A" * 8))


def test_forged_object_pointers_are_refused(tmp_path):
    path = _npy_member(tmp_path / "forged.npz", "|O", pickle.dumps(_ForgedArray(), protocol=4))
    with pytest.raises(FormatError, match="raw bytes"):
        safe_load_npz(path)
    # ndarray(shape, dtype, buffer) is the same hole through the constructor
    direct = _Call(np.ndarray, (1,), _ForgedDtype(), b"A" * 8)
    path = _npy_member(tmp_path / "direct.npz", "|O", pickle.dumps(direct, protocol=4))
    with pytest.raises(FormatError, match="numpy.ndarray"):
        safe_load_npz(path)


def test_pickle_that_is_not_the_promised_array(tmp_path):
    path = _npy_member(tmp_path / "liar.npz", "|O", pickle.dumps({"not": "an array"}, protocol=4))
    with pytest.raises(FormatError, match="header says object array"):
        safe_load_npz(path)


def _truncated(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    return dst


@pytest.mark.parametrize("reader", [safe_load_npz, read_detectron_npz, read_custom_dataset, load_result])
def test_broken_files_name_the_file(reader, walk_people, tmp_path):
    good = tmp_path / "good.npz"
    write_detectron_npz(good, walk_people, WALK_W, WALK_H)
    bad_member = tmp_path / "bad_member.npz"
    with zipfile.ZipFile(bad_member, "w") as zf:  # a valid zip whose .npy stops inside the pickle
        zf.writestr("boxes.npy", zipfile.ZipFile(good).read("boxes.npy")[:300])
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("positions_2d = 1\n")
    cases = [tmp_path / "missing.npz", tmp_path / "empty.npz", tmp_path / "text.npz",
             _truncated(good, tmp_path / "truncated.npz"), bad_member, tmp_path]
    for path in cases:
        with pytest.raises(FormatError) as info:
            reader(path)
        assert str(path) in str(info.value), str(info.value)


# --- poses.npz ---------------------------------------------------------------------------------------

def _result_from(people: list[People2D], fps: float = 25.0) -> Result:
    """One track from real detections, with a made-up but plausible 3D pose where the person is present."""
    T = len(people)
    kp = np.full((1, T, 17, 3), np.nan, np.float32)
    for t, p in enumerate(people):
        if len(p):
            kp[0, t] = p.keypoints[int(np.argmax(p.scores))]
    present = ~np.isnan(kp[0, :, 0, 0])
    poses = np.where(present[None, :, None, None], (kp[..., [0, 1, 2]] - kp[..., :1, [0, 1, 2]]) / 100, np.nan)
    return Result.from_dense(kp, poses.astype(np.float32), [7], np.arange(T) / fps, fps, (WALK_W, WALK_H),
                             np.zeros((1, T), bool), extras={"person_scores": np.full(int(present.sum()), 0.5)})


def test_result_round_trip_and_plain_keys(walk_people, tmp_path):
    result = _result_from(walk_people)
    path = tmp_path / "poses.npz"
    save_result(result, path)
    with np.load(path, allow_pickle=False) as data:  # readable by anyone, no pickle
        assert set(data.files) == set(RESULT_KEYS) | {"person_scores"}
        assert int(data["format_version"]) == 2 and data["keypoints_2d"].shape == (result.num_rows, 17, 3)
        assert data["frame_index"].dtype == np.int64 and data["track_lengths"].tolist() == [result.num_rows]
        assert data["keypoints_2d"].dtype == np.float32 and data["poses_3d"].dtype == np.float32
        assert data["track_ids"].dtype == np.int32 and data["timestamps"].dtype == np.float64
        assert data["fps"].shape == () and data["fps"].dtype == np.float64
        assert data["image_size"].tolist() == [WALK_W, WALK_H] and data["image_size"].dtype.kind == "i"
        assert data["interpolated"].dtype == bool
    back = load_result(path)
    _assert_same_result(result, back)


def _assert_same_result(a: Result, b: Result) -> None:
    for key in ("keypoints_2d", "poses_3d", "track_ids", "track_lengths", "frame_index", "timestamps",
                "image_size", "interpolated"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype, key
        np.testing.assert_array_equal(x, y, err_msg=key)
    np.testing.assert_array_equal(a.fps, b.fps)
    assert set(a.extras) == set(b.extras)
    for key, value in a.extras.items():
        np.testing.assert_array_equal(np.asarray(value), b.extras[key], err_msg=key)


def test_save_result_refuses_bad_extras_and_leaves_old_file(walk_people, tmp_path):
    result = _result_from(walk_people)
    path = tmp_path / "poses.npz"
    save_result(result, path)
    before = path.read_bytes()
    for extras, match in [({"poses_3d": np.zeros(3)}, "collides"),
                          ({"ragged": _object_array([1], [1, 2])}, "object"),
                          ({"a/b": np.zeros(2)}, "not a valid")]:
        result.extras = extras
        with pytest.raises(FormatError, match=match):
            save_result(result, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["poses.npz"]


def _saved_arrays(walk_people, path: Path) -> dict[str, np.ndarray]:
    """A real result saved to ``path``, and the arrays the file holds (to make broken variants of it)."""
    save_result(_result_from(walk_people), path)
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def test_load_result_problems_name_file_and_key(walk_people, tmp_path):
    arrays = _saved_arrays(walk_people, tmp_path / "poses.npz")

    missing = tmp_path / "missing_key.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != "timestamps"})
    with pytest.raises(FormatError, match="missing key timestamps") as info:
        load_result(missing)
    assert str(missing) in str(info.value)

    wrong = tmp_path / "wrong_shape.npz"
    np.savez(wrong, **{**arrays, "interpolated": arrays["interpolated"][:-1]})
    with pytest.raises(FormatError, match="'interpolated' has shape"):
        load_result(wrong)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "notes": _object_array("a", _Call(os.system, "true"))})
    with pytest.raises(FormatError, match="'notes' is a pickled object array"):
        load_result(pickled)

    npy = tmp_path / "poses.npy"
    np.save(npy, arrays["poses_3d"])
    with pytest.raises(FormatError, match="not an .npz file"):
        load_result(npy)


@st.composite
def _layouts(draw, max_tracks: int = 3, max_frames: int = 12):
    """A random sparse layout: T frames, P tracks, each in an increasing (possibly gappy) subset of frames."""
    T = draw(st.integers(0, max_frames))
    P = draw(st.integers(0, max_tracks)) if T else 0
    frames = [sorted(draw(st.sets(st.integers(0, T - 1), max_size=T))) for _ in range(P)]
    return T, np.array([len(f) for f in frames], np.int64), np.array([t for f in frames for t in f], np.int64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), layout=_layouts())
def test_result_round_trip_property(data, layout):
    T, lengths, frame_index = layout
    P, N = len(lengths), len(frame_index)
    floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
    kp = data.draw(hnp.arrays(np.float32, (N, 17, 3), elements=floats))
    poses = data.draw(hnp.arrays(np.float32, (N, 17, 3), elements=floats))
    ids = data.draw(hnp.arrays(np.int32, (P,), unique=True))
    timestamps = data.draw(hnp.arrays(np.float64, (T,), elements=st.floats(allow_nan=True)))
    interpolated = data.draw(hnp.arrays(bool, (N,)))
    names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(
        lambda n: n not in RESULT_KEYS and not n.startswith("camera_") and n not in (
            "trajectory", "poses_world", "poses_3d_camera", "focal_length_known"))
    extras = data.draw(st.dictionaries(names, hnp.arrays(
        hnp.scalar_dtypes().filter(lambda d: d.kind in "biuf"), hnp.array_shapes(min_dims=0, min_side=0)),
        max_size=3))
    result = Result(ids, lengths, frame_index, timestamps, keypoints_2d=kp, poses_3d=poses,
                    interpolated=interpolated, fps=data.draw(st.floats(allow_nan=True)),
                    image_size=data.draw(hnp.arrays(np.int64, (2,))), extras=extras)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "poses.npz"
        save_result(result, path, compress=data.draw(st.booleans()))
        back = load_result(path)
    _assert_same_result(result, back)
    for key, value in extras.items():
        assert back.extras[key].dtype == value.dtype and back.extras[key].shape == value.shape


def test_result_files_of_wildpose_0_1_still_load(walk_people, tmp_path):
    """0.1 wrote (P, T, ...) arrays, NaN where a person is absent, and no format_version: they load sparse."""
    result = _result_from(walk_people)
    trajectory = np.linspace([0, 1, 4], [2, 1, 6], result.num_rows).astype(np.float32)
    d = result.to_dense()
    old = tmp_path / "poses_0.1.npz"
    np.savez_compressed(old, keypoints_2d=d["keypoints_2d"], poses_3d=d["poses_3d"], track_ids=result.track_ids,
                        timestamps=result.timestamps, fps=np.float64(result.fps), image_size=result.image_size,
                        interpolated=d["interpolated"], trajectory=result.dense(trajectory),
                        poses_3d_camera=result.dense(result.poses_3d + trajectory[:, None]),
                        camera_rotations=np.tile(np.eye(3, dtype=np.float32), (result.num_frames, 1, 1)))
    back = load_result(old)
    for key in ("keypoints_2d", "poses_3d", "track_ids", "track_lengths", "frame_index", "interpolated"):
        np.testing.assert_array_equal(getattr(back, key), getattr(result, key), err_msg=key)
    np.testing.assert_array_equal(back.trajectory, trajectory)
    np.testing.assert_array_equal(back.poses_3d_camera, result.poses_3d + trajectory[:, None])
    assert back.camera is None  # a partial set of camera keys: kept as they are, in extras
    assert back.extras["camera_rotations"].shape == (result.num_frames, 3, 3)
    assert "poses_3d_camera" not in back.extras


def test_result_layout_errors_are_format_errors(walk_people, tmp_path):
    arrays = _saved_arrays(walk_people, tmp_path / "poses.npz")
    cases = {"frames out of order": {"frame_index": arrays["frame_index"][::-1].copy()},
             "lengths not adding up": {"track_lengths": arrays["track_lengths"] + 1},
             "a frame past the end": {"frame_index": arrays["frame_index"] + len(arrays["timestamps"])},
             "a newer format": {"format_version": np.int64(3)}}
    for what, change in cases.items():
        bad = tmp_path / f"{what}.npz"
        np.savez(bad, **{**arrays, **change})
        with pytest.raises(FormatError) as info:
            load_result(bad)
        assert str(bad) in str(info.value), what


# --- the reference's --viz-export .npy -----------------------------------------------------------------

def test_vp3d_export_round_trip(walk_people, tmp_path):
    result = _result_from(walk_people)
    poses = np.nan_to_num(result.dense(result.poses_3d, 0)).astype(np.float64)  # a caller's float64 is written as float32
    path = tmp_path / "walk.npy"
    save_vp3d_export(poses, path)
    plain = np.load(path, allow_pickle=False)
    assert plain.dtype == np.float32 and plain.shape == (len(walk_people), 17, 3)
    np.testing.assert_array_equal(load_vp3d_export(path), poses.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(T, 17, 3\)"):
        save_vp3d_export(poses[:, :16], tmp_path / "bad.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["walk.npy"]


def test_vp3d_export_refuses_pickles_and_other_files(tmp_path):
    target = tmp_path / "pwned"
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, _object_array(_Call(os.system, f"touch {target}")))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 16, 3), np.float32))
    (tmp_path / "text.npy").write_text("hello")
    for path, match in [(pickled, "pickled"), (wrong, r"\(T, 17, 3\)"), (tmp_path / "text.npy", "not an .npy"),
                        (tmp_path / "missing.npy", "no such file")]:
        with pytest.raises(FormatError, match=match) as info:
            load_vp3d_export(path)
        assert str(path) in str(info.value)
    assert not target.exists()
