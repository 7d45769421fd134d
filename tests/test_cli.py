"""The whole tool, through its command line, on the real shared videos and on bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wildpose.cli import main
from wildpose.formats.result import load_result

from conftest import dense


@pytest.fixture(scope="module")
def walk_run(walk_video, tmp_path_factory):
    """One full run on walk_single.mp4, shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("walk")
    code = main(["run", str(walk_video), "-o", str(out), "--export-vp3d", "-q"])
    return code, out / walk_video.stem


@pytest.fixture(scope="module")
def crowd_run(crowd_video, tmp_path_factory):
    out = tmp_path_factory.mktemp("crowd")
    code = main(["run", str(crowd_video), "-o", str(out), "-q"])
    return code, out / crowd_video.stem


def _segments_of(mask: np.ndarray) -> int:
    return int(np.sum(np.diff(np.concatenate([[0], mask.astype(int), [0]])) == 1))


def test_walk_single_one_track_covers_the_walk(walk_run):
    code, folder = walk_run
    assert code == 0
    result = dense(load_result(folder / "poses.npz"))
    P, T = result.track_ids.shape[0], result.timestamps.shape[0]
    assert T == 444
    assert result.fps == pytest.approx(25.0)
    assert tuple(result.image_size) == (480, 360)
    # one man: one track, present over one unbroken stretch covering most of the video
    assert P == 1, f"expected one track, got ids {result.track_ids}"
    present = result.present[0]
    assert _segments_of(present) == 1
    assert present.sum() >= 0.6 * T, f"track covers only {present.sum()} of {T} frames"
    # 3D: metres, root-relative, plausible human size (ankle to head top 1.2-2.2 m when standing/walking)
    poses = result.poses_3d[0][present]
    assert np.all(np.isfinite(poses))
    assert np.abs(poses[:, 0]).max() < 1e-6
    height = np.linalg.norm(poses[:, 10] - (poses[:, 3] + poses[:, 6]) / 2, axis=-1)
    assert 1.2 < np.median(height) < 2.2, np.median(height)
    # 2D: inside the frame where detected, NaN where absent
    kp = result.keypoints_2d[0][present]
    assert np.nanmin(kp[..., 0]) > -50 and np.nanmax(kp[..., 0]) < 530
    assert np.isnan(result.keypoints_2d[0][~present]).all()
    # interpolated frames are a subset of the present ones
    assert not (result.interpolated[0] & ~present).any()


def test_walk_single_vp3d_export(walk_run, walk_video):
    _, folder = walk_run
    export = np.load(folder / f"{walk_video.stem}.npy", allow_pickle=False)
    result = dense(load_result(folder / "poses.npz"))
    assert export.dtype == np.float32 and export.shape == (444, 17, 3)
    assert np.isfinite(export).all()
    present = result.present[result.main_track]
    np.testing.assert_allclose(export[present], result.poses_3d[result.main_track][present])


def test_marathon_several_stable_tracks(crowd_run):
    code, folder = crowd_run
    assert code == 0
    result = dense(load_result(folder / "poses.npz"))
    T = len(result.timestamps)
    assert T == 138
    present = result.present
    simultaneous = present.sum(0)
    assert np.median(simultaneous) >= 3, f"median people per frame {np.median(simultaneous)}"
    long_tracks = present.sum(1) >= T // 2
    assert long_tracks.sum() >= 3, "fewer than 3 people tracked for half the clip"
    assert len(set(result.track_ids.tolist())) == len(result.track_ids)
    # stable ids: a track's hip centre moves smoothly from frame to frame (no jumps to another runner)
    hips = result.keypoints_2d[..., [11, 12], :2].mean(axis=2)  # (P, T, 2), NaN where absent
    step = np.linalg.norm(np.diff(hips, axis=1), axis=-1)
    both = present[:, 1:] & present[:, :-1]
    width = result.image_size[0]
    assert np.nanmax(np.where(both, step, 0)) < 0.08 * width, "a track jumps across the frame between frames"


def test_run_outputs_are_complete_folders_only(walk_run):
    _, folder = walk_run
    leftovers = [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def bad_inputs(walk_video, tmp_path_factory):
    """One of each kind of bad input, next to a good (short) video."""
    from skimage import data

    folder = tmp_path_factory.mktemp("bad")
    (folder / "notes.mp4").write_text("this is not a video\n")
    (folder / "noise.mkv").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    raw = walk_video.read_bytes()
    (folder / "truncated.mp4").write_bytes(raw[: len(raw) * 4 // 10])
    coffee = data.coffee()[:384, :576]  # a cup of coffee: no person
    _write_video(folder / "nobody.mp4", [coffee] * 8)
    from badcorpus import zero_frame_video

    zero_frame_video(folder / "zero_frames.mkv")  # a video stream that holds no frames
    from wildpose.video import VideoWriter, read_frames

    with VideoWriter(folder / "good.mp4", 480, 360, 25) as writer:  # 2 s of the walk: the batch's good file
        for f in read_frames(walk_video, start=6.0, end=8.0):
            writer.write(f.image)
    return folder


def test_bad_inputs_fail_one_line_each_and_the_batch_goes_on(bad_inputs, tmp_path, capfd):
    out = tmp_path / "out"
    missing = bad_inputs / "missing.mp4"
    inputs = [missing] + sorted(p for p in bad_inputs.iterdir() if p.name != "good.mp4") + [bad_inputs / "good.mp4"]
    assert len(inputs) == 7
    code = main(["run", *map(str, inputs), "-o", str(out), "-q"])
    err = capfd.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    bad = [p for p in inputs if p.name != "good.mp4"]
    for p in bad:
        mine = [line for line in lines if str(p) in line]
        assert len(mine) == 1, f"expected one error line for {p.name}, got {mine}\n{err}"
    assert len(lines) == len(bad)
    # the good file was processed; nothing at all was written for the bad ones
    assert (out / "good" / "poses.npz").exists()
    assert sorted(p.name for p in out.iterdir()) == ["good"]


def test_cli_entry_point_and_usage_errors(tmp_path):
    exe = shutil.which("wildpose") or sys.executable
    args = [exe] if exe.endswith("wildpose") else [exe, "-m", "wildpose.cli"]
    done = subprocess.run([*args, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "wildpose" in done.stdout
    done = subprocess.run([*args, "run"], capture_output=True, text=True)
    assert done.returncode == 2
    done = subprocess.run([*args, "run", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o")], capture_output=True,
                          text=True)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "nope.mp4" in done.stderr
    assert not (tmp_path / "o" / "nope").exists()


def test_reference_steps_detect_dataset_lift_render(walk_video, tmp_path):
    """The reference's workflow, step by step: detect -> dataset -> lift, and render of a run's result."""
    from wildpose.formats.keypoints import load_tracks
    from wildpose.formats.reference import read_custom_dataset

    det = tmp_path / "det"
    assert main(["detect", str(walk_video), "-o", str(det), "-q", "--end", "4"]) == 0
    tracks, fps, size = load_tracks(det / "walk_single.mp4.npz")
    assert fps == pytest.approx(25.0) and size == (480, 360)
    assert len(tracks.timestamps) == 100 and len(tracks) == 1

    assert main(["detect", str(walk_video), "-o", str(tmp_path / "d2"), "-q", "--end", "4",
                 "--format", "detectron"]) == 0
    # the reference's run.py loads these with allow_pickle=True; check that structure with plain numpy
    raw = np.load(tmp_path / "d2" / "walk_single.mp4.npz", allow_pickle=True)
    assert len(raw["keypoints"]) == 100 and raw["metadata"].item() == {"w": 480, "h": 360}

    dataset = tmp_path / "data_2d_custom_mine.npz"
    assert main(["dataset", str(det / "walk_single.mp4.npz"), str(tmp_path / "d2" / "walk_single.mp4.npz"),
                 "-o", str(dataset), "-q"]) == 0
    positions, metadata = read_custom_dataset(dataset)
    assert set(positions) == {"walk_single.mp4"}  # both inputs are the same video: one entry
    ref = np.load(dataset, allow_pickle=True)
    xy = ref["positions_2d"].item()["walk_single.mp4"]["custom"][0]
    assert xy.dtype == np.float32 and xy.shape[1:] == (17, 2)
    assert ref["metadata"].item()["video_metadata"]["walk_single.mp4"] == {"w": 480, "h": 360}

    lifted = tmp_path / "lifted"
    assert main(["lift", str(dataset), "-o", str(lifted), "-q", "--fps", "25"]) == 0
    result = load_result(lifted / "walk_single" / "poses.npz")
    assert result.poses_3d.shape == (len(xy), 17, 3) and np.isfinite(result.poses_3d).all()
    assert result.track_lengths.tolist() == [len(xy)] and result.num_frames == len(xy)

    assert main(["lift", str(det / "walk_single.mp4.npz"), "-o", str(lifted / "b"), "-q"]) == 0
    result = load_result(lifted / "b" / "walk_single" / "poses.npz")
    assert result.num_frames == 100

    # render a run's result with the separate command
    out = tmp_path / "run"
    assert main(["run", str(walk_video), "-o", str(out), "-q", "--end", "2"]) == 0
    video = tmp_path / "render.mp4"
    assert main(["render", str(out / "walk_single"), str(walk_video), "-o", str(video), "--end", "2", "-q"]) == 0
    from wildpose.video import probe

    info = probe(video)
    assert info.num_frames in (None, 50) and info.width > 480 and info.fps == pytest.approx(25.0)
    assert sum(1 for _ in __import__("wildpose.video", fromlist=["read_frames"]).read_frames(video)) == 50


def test_run_render_writes_video(walk_video, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(walk_video), "-o", str(out), "--render", "--start", "6", "--end", "8", "-q"]) == 0
    from wildpose.video import probe, read_frames

    info = probe(out / "walk_single" / "render.mp4")
    assert info.fps == pytest.approx(25.0) and info.height >= 360
    frames = sum(1 for _ in read_frames(out / "walk_single" / "render.mp4"))
    result = load_result(out / "walk_single" / "poses.npz")
    assert frames == len(result.timestamps) == 50
    assert result.timestamps[0] == pytest.approx(6.0, abs=0.05)


def test_hostile_inputs_to_lift_are_refused(tmp_path):
    """A 2D file with a pickle payload must not run code."""
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arr = np.empty(1, dtype=object)
    arr[0] = Payload()
    evil = tmp_path / "evil.npz"
    with open(evil, "wb") as f:
        np.savez(f, positions_2d=arr, metadata=arr)
    code = main(["lift", str(evil), "-o", str(tmp_path / "o"), "-q"])
    assert code == 1
    assert not marker.exists()
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_walk_single_trajectory_and_world(walk_run):
    """poses.npz carries the global trajectory and the world-aligned people (y up, floor at 0)."""
    _, folder = walk_run
    result = load_result(folder / "poses.npz")
    with np.load(folder / "poses.npz") as raw:  # plain numpy reads the same rows
        assert int(raw["format_version"]) == 2
        np.testing.assert_array_equal(raw["trajectory"], result.trajectory)
    traj = result.trajectory[result.track(0)]
    np.testing.assert_allclose(result.poses_3d_camera[result.track(0)],
                               result.poses_3d[result.track(0)] + traj[:, None, :], atol=1e-4)
    assert np.all(traj[:, 2] > 1.0), "the walker must be in front of the camera"
    # he walks across the frame: his camera-space x changes by metres, not centimetres
    assert np.ptp(traj[:, 0]) > 2.0
    world = result.poses_world[result.track(0)]
    feet = world[:, [3, 6], 1].min(axis=1)
    assert abs(np.median(feet)) < 0.2, f"feet at y={np.median(feet):.2f} m, expected ~0"
    spine = world[:, 8] - world[:, 0]
    upright = spine[:, 1] / np.linalg.norm(spine, axis=1)
    assert np.median(upright) > np.cos(np.radians(25)), "the world-aligned walker is not upright"
    rotation = result.camera.rotation
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-4)
    # the camera the numbers rest on: the default 60-degree field of view, no lens model
    K = result.camera.intrinsics.matrix
    width = result.image_size[0]
    assert K[0, 0] == pytest.approx(max(result.image_size) / (2 * np.tan(np.radians(30))), rel=1e-6)
    assert K[0, 2] == pytest.approx(width / 2) and K[2, 2] == 1.0
    assert result.camera.intrinsics.model == "pinhole" and result.camera.intrinsics.distortion == ()
    assert not result.camera.focal_length_known
