"""wildpose.distributed: segment planning and joining (pure), and `run --ray` on a real Ray cluster on 127.0.0.1.

The cluster tests start Ray on this machine (loopback only, two worker processes), run the shared videos, a copy
of one and a long video made of the walk played twice (split into three segments) through it, compare every
result with a local run's, kill a worker in the middle of a task to exercise Ray's retry, resume, and stop the
cluster. They skip, saying why, where Ray (the optional extra wildpose[ray]) is not installed.
"""

from __future__ import annotations

import builtins
import importlib.util
import os
import shutil
import signal

import numpy as np
import pytest

from wildpose.distributed.segments import Segment, SegmentOutput, continue_rotations, plan_segments, stitch

# --------------------------------------------------------------------------------------------- planning (pure)


@pytest.mark.parametrize("duration, fps, seconds, start, end, count", [
    (17.76, 25.0, 120.0, None, None, 1),   # short: the whole video, as a local run reads it
    (17.76, 25.0, 6.0, None, None, 3),
    (17.76, 25.0, 17.76, None, None, 1),   # exactly one segment long
    (3600.0, 29.97, 120.0, None, None, 30),
    (100.0, 25.0, 10.0, 20.0, 50.0, 3),     # only [start, end) is planned
    (None, 25.0, 1.0, None, None, 1),       # unknown duration: not split
])
def test_plan_segments_partitions_the_frames(duration, fps, seconds, start, end, count):
    segments = plan_segments(duration, fps, segment_seconds=seconds, overlap_seconds=1.0, start=start, end=end)
    assert len(segments) == count and [s.index for s in segments] == list(range(count))
    if count == 1:
        assert segments[0] == Segment(0, 1, start, end, None, None)
        return
    assert segments[0].start == start and segments[-1].end == end
    first, last = start or 0.0, min(duration, end or duration)
    times = np.arange(first, last, 1.0 / fps)  # frame times of a constant-rate video
    owners = np.stack([s.owns(times) for s in segments])
    assert (owners.sum(0) == 1).all()  # every frame owned once
    for s in segments[1:]:
        cut_frames = s.own_start * fps
        assert abs(cut_frames - round(cut_frames) - 0.5) < 1e-3 or abs(cut_frames - round(cut_frames) + 0.5) < 1e-3
        assert s.start == pytest.approx(max(first, s.own_start - 1.0))  # the overlap before its own frames
    lengths = [(s.own_end or last) - (s.own_start or first) for s in segments]
    assert max(lengths) - min(lengths) <= 2.0 / fps and max(lengths) <= seconds + 1.0 / fps


@pytest.mark.parametrize("kwargs", [dict(segment_seconds=0.0), dict(segment_seconds=float("nan")),
                                    dict(overlap_seconds=-1.0)])
def test_plan_segments_refuses_bad_lengths(kwargs):
    with pytest.raises(ValueError):
        plan_segments(100.0, 25.0, **kwargs)


def _rotation(axis, degrees):
    import cv2

    vec = np.asarray(axis, np.float64) / np.linalg.norm(axis) * np.radians(degrees)
    return cv2.Rodrigues(vec)[0]


def test_continue_rotations_recovers_the_offset():
    rng = np.random.default_rng(1)
    x = _rotation([0.2, 1.0, 0.1], 7.0)
    current = np.stack([_rotation(rng.normal(size=3), a) for a in rng.uniform(0, 20, 30)])
    noise = np.stack([_rotation(rng.normal(size=3), 0.05) for _ in range(30)])
    previous = noise @ current @ x
    got = continue_rotations(previous, current)
    assert np.degrees(np.arccos((np.trace(got.T @ x) - 1) / 2)) < 0.05
    assert np.allclose(got @ got.T, np.eye(3)) and np.linalg.det(got) > 0
    usable = np.zeros(30, bool)
    assert continue_rotations(previous, current, usable) is None
    usable[3] = True
    assert np.allclose(continue_rotations(previous, current, usable), current[3].T @ previous[3])


def _segment_output(times, rotations, people_per_frame=1, held=None):
    T = len(times)
    n = np.full(T, people_per_frame)
    M = int(n.sum())
    keypoints = np.repeat(np.asarray(times, np.float32)[:, None, None], people_per_frame, 0) * np.ones((1, 17, 3))
    return SegmentOutput(np.asarray(times, np.float64), keypoints.astype(np.float32), np.ones((M, 5), np.float32),
                         np.concatenate([[0], np.cumsum(n)]), np.zeros((M, 9), np.float32), rotations,
                         np.full(T, 50), np.full(T, 60), np.zeros(T, bool) if held is None else held)


def test_stitch_keeps_owned_frames_and_continues_the_camera():
    fps, T = 25.0, 100
    times = np.arange(T) / fps
    truth = np.stack([_rotation([0, 1, 0.1], 0.3 * t) for t in range(T)])  # a pan, from frame 0
    segments = plan_segments(T / fps, fps, segment_seconds=1.5, overlap_seconds=0.4)
    assert len(segments) == 3
    outputs = []
    for s in segments:
        own = (times >= (s.start or 0) - 1e-6) & (times < (s.end or 1e9) - 1e-6)
        local = truth[own] @ truth[own][0].T  # each segment's chain starts at its own first frame
        outputs.append(_segment_output(times[own], local))
    detections, timestamps, motion = stitch(outputs, segments)
    assert np.array_equal(timestamps, times)
    assert len(detections) == T and np.array_equal(detections.keypoints[:, 0, 0], times.astype(np.float32))
    assert detections.colours.shape == (T, 9)
    assert np.allclose(motion.rotations, truth, atol=1e-9) and not motion.held.any()
    # no overlap: nothing to continue from, so the rotation is held across each cut and the cut frame says so
    segments = plan_segments(T / fps, fps, segment_seconds=1.5, overlap_seconds=0.0)
    outputs = []
    for s in segments:
        own = s.owns(times)
        outputs.append(_segment_output(times[own], truth[own] @ truth[own][0].T))
    _, _, motion = stitch(outputs, segments)
    cuts = [int(np.flatnonzero(s.owns(times))[0]) for s in segments[1:]]
    assert np.flatnonzero(motion.held).tolist() == cuts
    for c in cuts:
        assert np.allclose(motion.rotations[c], motion.rotations[c - 1])


def test_stitch_refuses_segments_that_do_not_join():
    times = np.arange(50) / 25.0
    segments = plan_segments(2.0, 25.0, segment_seconds=1.0, overlap_seconds=0.2)
    parts = [_segment_output(times[s.owns(times)], None) for s in segments]
    parts[1].rotations = np.tile(np.eye(3), (len(parts[1]), 1, 1))
    with pytest.raises(ValueError, match="camera estimate"):
        stitch(parts, segments)
    parts = [_segment_output(times[s.owns(times)][::-1].copy(), None) for s in segments]
    with pytest.raises(ValueError, match="follow one another"):
        stitch(parts, segments)


def test_segment_file_round_trip_and_refusal(tmp_path):
    out = _segment_output(np.arange(5) / 25.0, np.tile(np.eye(3), (5, 1, 1)), people_per_frame=2)
    out.damaged = 1
    out.save(tmp_path / "s.npz", {"segment": {"index": 0}})
    back, meta = SegmentOutput.load(tmp_path / "s.npz")
    assert meta["segment"] == {"index": 0} and back.damaged == 1 and len(back) == 5
    assert np.array_equal(back.keypoints, out.keypoints) and np.array_equal(back.held, out.held)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    from wildpose.errors import FormatError

    with pytest.raises(FormatError, match="bad.npz"):
        SegmentOutput.load(tmp_path / "bad.npz")
    assert SegmentOutput.read_meta(tmp_path / "bad.npz") is None


# --------------------------------------------------------------------------------------------- a real cluster

SEGMENT_SECONDS = 12.0  # the long video (35.5 s) becomes 3 segments


_PRINT = builtins.print

@pytest.fixture(scope="module")
def cluster():
    """Ray on 127.0.0.1 with two worker CPUs (two worker processes at a time), stopped after the module."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (the optional extra: pip install 'wildpose[ray]')")
    from wildpose.distributed.ray_runner import LOOPBACK_ENV, _thread_env, shutdown

    os.environ.setdefault(LOOPBACK_ENV, "0")  # single node, loopback only (before ray is imported)
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             object_store_memory=100 * 2 ** 20, runtime_env={"env_vars": _thread_env(1)})
    try:
        assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}
        yield ray
    finally:
        shutdown(ray, _PRINT)
    assert builtins.print is _PRINT  # nothing of Ray's left in the interpreter for the tests that follow


@pytest.fixture(scope="module")
def batch(tmp_path_factory, walk_video, crowd_video):
    """The inputs: the two shared videos, a copy of the walk (same stem: distinct folders), a long video."""
    from wildpose.video import VideoWriter, probe, read_frames

    root = tmp_path_factory.mktemp("inputs")
    (root / "copy").mkdir()
    copy = root / "copy" / walk_video.name
    shutil.copyfile(walk_video, copy)
    long_video = root / "walk_twice.mp4"
    info = probe(walk_video)
    with VideoWriter(long_video, info.width, info.height, info.fps) as writer:
        for _ in range(2):
            for frame in read_frames(walk_video):
                writer.write(frame.image)
    return {"walk": walk_video, "crowd": crowd_video, "copy": copy, "long": long_video}


@pytest.fixture(scope="module")
def local(batch):
    """Local runs (``process_video``) of the walk, the crowd and the long video, held to one thread as every
    worker is (the detector's interpreter, OpenCV, BLAS): the camera estimate's last digits depend on it."""
    threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl holds BLAS to one thread")
    import cv2

    from wildpose.pipeline import RunOptions, make_detector, process_video

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        with threadpoolctl.threadpool_limits(1):
            detector = make_detector(RunOptions(), num_threads=1)
            return {name: process_video(batch[name], detector=detector)[0] for name in ("walk", "crowd", "long")}
    finally:
        cv2.setNumThreads(previous)


def _angle_deg(a, b):
    d = np.einsum("tji,tjk->tik", a, b)
    return np.degrees(np.arccos(np.clip((np.trace(d, axis1=1, axis2=2) - 1) / 2, -1, 1)))


def assert_same_result(got, want):
    """The same tracks, ids, frames, 2D keypoints and camera-space 3D poses, bit for bit; the camera's rotation
    within 0.5 degrees, and the world (trajectory, world poses) within 2% of each person's distance from the
    camera (docs/SCALING.md, "What a cut changes"): a split video's camera chain is continued across each cut,
    and even a whole video's camera estimate ends slightly elsewhere in a worker that has run other tasks before;
    the rotation moves world positions by up to 0.9% of the distance (0.5 degrees), and the floor fit, which sets
    each person's distance so that everyone stands on one floor, scales the trajectory by the same order."""
    assert np.array_equal(got.track_ids, want.track_ids)
    assert np.array_equal(got.timestamps, want.timestamps)
    assert np.array_equal(got.offsets, want.offsets) and np.array_equal(got.frame_index, want.frame_index)
    assert np.array_equal(got.keypoints_2d, want.keypoints_2d, equal_nan=True)
    assert np.array_equal(got.poses_3d, want.poses_3d, equal_nan=True)
    assert got.camera.static == want.camera.static
    if got.camera.rotations is not None:
        assert _angle_deg(got.camera.rotations, want.camera.rotations).max() < 0.5
    distance = np.linalg.norm(want.trajectory, axis=-1)  # (N,) metres from the camera
    assert np.nanmax(np.linalg.norm(got.trajectory - want.trajectory, axis=-1) / distance) < 0.02
    world = np.linalg.norm(got.poses_world - want.poses_world, axis=-1).max(-1)  # (N,) metres, worst joint
    assert np.nanmax(world / distance) < 0.02


@pytest.fixture(scope="module")
def ray_batch(cluster, batch, tmp_path_factory):
    """The four inputs through the cluster (the long one in three segments, whose files are kept here)."""
    from wildpose.distributed.ray_runner import RayConfig, run_batch
    from wildpose.pipeline import RunOptions

    out = tmp_path_factory.mktemp("ray_out")
    videos = [batch["walk"], batch["crowd"], batch["copy"], batch["long"]]
    seen = []
    outcomes = run_batch(videos, out, RunOptions(), RayConfig(segment_seconds=SEGMENT_SECONDS, keep_segments=True),
                         progress=seen.append)
    return videos, outcomes, seen, out


def test_ray_batch_equals_local_runs(ray_batch, local):
    from wildpose.formats.result import load_result
    from wildpose.manifest import read_manifest
    from wildpose.pipeline import output_dirs

    videos, outcomes, seen, out = ray_batch
    assert [o.error for o in outcomes] == [None] * 4
    dirs = output_dirs(videos, out)
    assert dirs[0] != dirs[2] and dirs[3].name == "walk_twice"
    assert [o.summary.out_dir for o in outcomes] == dirs
    results = [load_result(d / "poses.npz") for d in dirs]
    assert_same_result(results[0], local["walk"])
    assert_same_result(results[2], local["walk"])
    assert_same_result(results[1], local["crowd"])
    assert_same_result(results[3], local["long"])  # three segments, joined
    # the folders are a local run's: the same files, and manifests a local --resume accepts
    for d in dirs:
        manifest = read_manifest(d)
        assert sorted(manifest["files"]) == ["poses.npz"] and manifest["options"]["detector"] == "movenet"
    # progress: videos and frames, up to every frame the tasks decode (the long video's overlaps counted)
    last = seen[-1]
    assert last.videos_done == last.videos_total == 4
    assert last.frames_done >= 444 * 4 + 138 and abs(last.frames_total - last.frames_done) <= 5
    # two worker processes; each loaded the models once, for all the tasks it ran; each was told one thread
    pids = {o.pid for o in outcomes}
    assert 1 <= len(pids) <= 2
    assert all(o.threads == {"detector": 1, "opencv": 1, "omp": "1"} for o in outcomes)
    assert sum(o.models_loaded for o in outcomes) <= len(pids)


def test_split_video_cut_bound(ray_batch, local):
    """At and after the cuts: 2D and camera-space 3D identical to the local run; the camera's rotation, continued
    across each cut over the overlap, within 0.5 degrees (measured: docs/SCALING.md), so the world within 2% of
    the distance."""
    from wildpose.formats.result import load_result

    _, outcomes, _, out = ray_batch
    assert outcomes[3].segments == 3
    got = load_result(out / "walk_twice" / "poses.npz")
    segment_files = sorted((out / ".wildpose-segments" / "walk_twice").glob("*.npz"))
    assert [f.name for f in segment_files] == ["0000-of-0003.npz", "0001-of-0003.npz", "0002-of-0003.npz"]
    long_local = local["long"]
    assert_same_result(got, long_local)
    angle = _angle_deg(got.camera.rotations, long_local.camera.rotations)
    cuts = [SegmentOutput.load(f)[1]["segment"]["own_start"] for f in segment_files[1:]]
    near = np.zeros(len(angle), bool)
    for c in cuts:
        near |= np.abs(got.timestamps - c) < 1.0
    world = np.abs(got.poses_world - long_local.poses_world).max(axis=(1, 2))
    print(f"split vs local: rotation up to {angle.max():.3f} deg ({angle[near].max():.3f} within 1 s of a cut), "
          f"world poses up to {1000 * np.nanmax(world):.1f} mm, trajectory up to "
          f"{1000 * np.nanmax(np.abs(got.trajectory - long_local.trajectory)):.1f} mm")
    assert near.any() and angle[near].max() < 0.5 and angle.max() < 0.5


def test_killed_worker_is_retried(cluster, batch, local, tmp_path):
    from wildpose.distributed.ray_runner import RayConfig, run_batch
    from wildpose.formats.result import load_result
    from wildpose.pipeline import RunOptions

    killed = []

    def kill_one(p):
        if not killed and p.frames_done >= 60 and p.busy:
            key, pid = sorted(p.busy.items())[0]
            os.kill(pid, signal.SIGKILL)  # a worker lost mid-task (a crash, a pre-empted node)
            killed.append((key, pid))

    (outcome,) = run_batch([batch["long"]], tmp_path, RunOptions(), RayConfig(segment_seconds=SEGMENT_SECONDS),
                           progress=kill_one)
    assert killed and "walk_twice.mp4 [" in killed[0][0], "no segment task was seen running"
    assert outcome.error is None and outcome.segments == 3
    assert_same_result(load_result(tmp_path / "walk_twice" / "poses.npz"), local["long"])
    assert not (tmp_path / ".wildpose-segments").exists()  # the segment files went once joined


def test_command_resume_skips_what_is_done(ray_batch, capsys):
    """`run --ray --resume` on the batch's folder: every input skipped (the split one before any segment is
    started), a missing input one error line, exit code 1."""
    from wildpose.cli import main

    videos, _, _, out = ray_batch
    missing = out / "missing.mp4"
    rc = main(["run", *map(str, videos), str(missing), "-o", str(out), "--ray", "--resume",
               "--segment-seconds", str(SEGMENT_SECONDS)])
    stdout, stderr = capsys.readouterr()
    assert rc == 1
    assert stdout.count("(skipped)") == 4 and "4 of 5 inputs done, 1 failed" in stdout
    assert f"error: {missing}: no such file" in stderr


@pytest.mark.parametrize("argv", [["--workers", "2"], ["--threads", "1"], ["--segment-seconds", "10"],
                                  ["--ray", "--workers", "0"], ["--ray", "--threads", "0"]])
def test_command_refuses_ray_options_without_ray_or_below_one(argv, tmp_path, capsys, walk_video):
    from wildpose.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["run", str(walk_video), "-o", str(tmp_path), *argv])
    assert exc.value.code == 2 and "--" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing was started
