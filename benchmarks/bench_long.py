"""Long videos: peak memory and poses.npz size grow with the person-frames seen, not with tracks x frames.

    python benchmarks/bench_long.py                 # (a) a synthetic hour and a quarter of it, (b) the crowd 1x / 10x
    python benchmarks/bench_long.py --hours 0.25    # (a) only, shorter
    python benchmarks/bench_long.py --skip-video    # (a) only

(a) A synthetic street: ``--hours`` of 25 fps frames, a thousand passers-by per hour, each in view 5-40 s (about
six at a time), walking across a 1280x720 view at random distances. Their 2D keypoints are a real CMU walk
(held-out mocap) projected through a pinhole camera with MoveNet-like noise; they are fed as detections (no
detector) through tracking, lifting, trajectory and world alignment, saving poses.npz, and the render of the
first ``--render-seconds`` (against a plain video of that length). Each size runs in a fresh process, which
reports its own peak RSS (VmHWM).

(b) ``wildpose run`` on the shared crowd video and on the same video played 10 times in a row, each in a fresh
process: the 10x run's peak RSS over the 1x run's.

Ratios are printed against the runs in this same invocation; the absolute numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
WALK_BVH = SHARED / "mocap" / "cmu_motion_prediction_subset" / "test" / "walking" / "walking_1.bvh"
FPS = 25.0
SIZE = (1280, 720)


def _peak_mib() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024


def make_street(hours: float, tracks_per_hour: int = 1000, seed: int = 0):
    """(Detections, timestamps (T,), person-frames) of a synthetic street, without a Python object per frame."""
    from wildpose.lift.normalize import focal_from_fov
    from wildpose.lift.train.rigs import load_clip
    from wildpose.types import Detections

    rng = np.random.default_rng(seed)
    T = int(round(hours * 3600 * FPS))
    clip = load_clip(WALK_BVH)  # 60 fps, metres, y up
    root = clip.h36m[::2, :1].astype(np.float64)  # 30 fps; played at 25: a little slow, still a walk
    coco = clip.coco[::2].astype(np.float64) - root  # in place: the street gives the travel
    coco[..., 1] *= -1.0  # y down (camera axes)
    P = max(1, int(round(tracks_per_hour * hours)))
    durations = rng.uniform(5.0, 40.0, P)
    starts = rng.uniform(0, max(1.0, T / FPS - 5.0), P)
    f = focal_from_fov(SIZE)
    lengths = np.minimum(durations, T / FPS - starts) * FPS
    lengths = np.where(lengths >= 10, lengths, 0).astype(np.int64)
    first = (starts * FPS).astype(np.int64)
    # every row's frame, and where it goes in frame order: the keypoints are written once, in place
    frame = np.concatenate([np.arange(a, a + n) for a, n in zip(first, lengths)])
    order = np.argsort(frame, kind="stable")
    dest = np.empty_like(order)
    dest[order] = np.arange(len(order))
    frame = frame[order]
    del order
    kp = np.empty((len(frame), 17, 3), np.float32)
    offset = 0
    for p in range(P):
        n = int(lengths[p])
        if n == 0:
            continue
        depth = rng.uniform(6.0, 25.0)
        direction = rng.choice([-1.0, 1.0])
        half_width = depth * SIZE[0] / (2 * f)
        x0 = -direction * half_width * rng.uniform(0.7, 0.9)  # walks across the view, inside it
        speed = 2 * abs(x0) / (n / FPS) * rng.uniform(0.7, 1.0)
        k = (np.arange(n) + rng.integers(len(coco))) % len(coco)
        turn = np.array([[0.0, 0, direction], [0, 1, 0], [-direction, 0, 0.0]])  # walk across the view
        body = coco[k] @ turn.T
        root = np.stack([x0 + direction * speed * np.arange(n) / FPS, np.full(n, 1.65 - 0.9),
                         np.full(n, depth)], -1)  # camera 1.65 m up, pelvis 0.9 m: y down is positive
        cam = body + root[:, None]
        uv = cam[..., :2] / cam[..., 2:] * f + np.array(SIZE) / 2
        uv += rng.normal(0, 0.004 * f / depth * 1.7, uv.shape)  # a few pixels of detector noise
        kp[dest[offset:offset + n], :, :2] = uv
        kp[dest[offset:offset + n], :, 2] = rng.uniform(0.4, 0.9, uv.shape[:2])
        offset += n
    del dest
    lo, hi = kp[..., :2].min(1), kp[..., :2].max(1)
    boxes = np.concatenate([lo, hi, kp[:, :, 2].mean(1, keepdims=True)], -1)
    del lo, hi
    offsets = np.concatenate([[0], np.cumsum(np.bincount(frame, minlength=T))])
    return Detections.from_arrays(kp, boxes, offsets), np.arange(T) / FPS, len(frame)


def child_synthetic(hours: float, render_seconds: float, workdir: Path) -> dict:
    """One synthetic street in this process: every stage after detection, then its own peak RSS."""
    from wildpose.camera import CameraIntrinsics
    from wildpose.formats.result import save_result
    from wildpose.lift import load_lifter
    from wildpose.pipeline import RunOptions, keypoints_for_lifting, lift_tracks, track_video
    from wildpose.render import render_video
    from wildpose.types import Camera, Result
    from wildpose.video import VideoWriter
    from wildpose.world import locate_people

    seconds, peaks = {}, {}
    t = time.perf_counter()
    detections, timestamps, person_frames = make_street(hours)
    seconds["make"] = time.perf_counter() - t
    after_make = _peak_mib()
    t = time.perf_counter()
    tracks = track_video(detections, timestamps, RunOptions())
    detection_mib = detections.nbytes / 2 ** 20
    del detections
    seconds["track"] = time.perf_counter() - t
    peaks["track"] = _peak_mib()
    intrinsics = CameraIntrinsics.default(SIZE)
    t = time.perf_counter()
    keypoints = keypoints_for_lifting(tracks, intrinsics)
    poses = lift_tracks(tracks, SIZE, FPS, intrinsics, model=load_lifter(), keypoints=keypoints)
    seconds["lift"] = time.perf_counter() - t
    peaks["lift"] = _peak_mib()
    t = time.perf_counter()
    world = locate_people(tracks, keypoints, poses, SIZE, FPS, intrinsics)
    seconds["world"] = time.perf_counter() - t
    peaks["world"] = _peak_mib()
    camera = Camera(intrinsics, False, world.rotation, world.position, world.rotations, True,
                    np.zeros(tracks.num_frames, bool))
    result = Result.from_tracks(tracks, poses, FPS, SIZE, trajectory=world.trajectory,
                                poses_world=world.poses_world, camera=camera)
    del world, keypoints
    t = time.perf_counter()
    out = workdir / f"street_{hours:g}h.npz"
    save_result(result, out)
    seconds["save"] = time.perf_counter() - t
    peaks["save"] = _peak_mib()
    t = time.perf_counter()
    video = workdir / "plain.mp4"
    with VideoWriter(video, 320, 180, FPS) as writer:  # the render's left panel: a plain frame per frame
        grey = np.full((180, 320, 3), 90, np.uint8)
        for _ in range(int(render_seconds * FPS)):
            writer.write(grey)
    rendered = render_video(video, result, workdir / "render.mp4", start=0.0, end=render_seconds)
    seconds["render"] = time.perf_counter() - t
    peaks["render"] = _peak_mib()
    P, T = len(result), result.num_frames
    return {"hours": hours, "frames": T, "tracks": P, "person_frames": result.num_rows,
            "detections": person_frames, "detections_mib": detection_mib,
            "file_bytes": out.stat().st_size, "bytes_per_person_frame": out.stat().st_size / result.num_rows,
            "dense_0_1_mib": P * T * (4 * 17 * 3 * 4 + 3 * 4 + 1) / 2 ** 20,
            "rendered_frames": rendered, "peak_after_make_mib": after_make, "peak_mib": _peak_mib(),
            "seconds": seconds, "peak_mib_after": peaks}


def child_run(video: Path, workdir: Path) -> dict:
    from wildpose.cli import main

    t = time.perf_counter()
    rc = main(["run", str(video), "-o", str(workdir / "out"), "-q"])
    return {"rc": rc, "peak_mib": _peak_mib(), "seconds": time.perf_counter() - t,
            "file_bytes": (workdir / "out" / video.stem / "poses.npz").stat().st_size}


def _in_child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, nargs="*", default=[0.25, 1.0])
    parser.add_argument("--render-seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-video", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        with tempfile.TemporaryDirectory() as tmp:
            if kind == "synthetic":
                row = child_synthetic(float(rest[0]), float(rest[1]), Path(tmp))
            else:
                row = child_run(Path(rest[0]), Path(tmp))
        print(json.dumps(row))
        return 0
    if not WALK_BVH.exists():
        print(f"skipped: {WALK_BVH} absent (the shared data is not next to this checkout)")
        return 0
    print(f"# {time.strftime('%Y-%m-%d')}, {sys.platform}")
    print("(a) synthetic street, every stage after detection (fresh process each)")
    rows = []
    for hours in args.hours:
        row = _in_child(["synthetic", str(hours), str(args.render_seconds)])
        rows.append(row)
        s = row["seconds"]
        print(f"  {hours:g} h: {row['frames']} frames, {row['tracks']} tracks, {row['person_frames']} person-frames "
              f"({row['person_frames'] / row['frames']:.1f} in view); peak RSS {row['peak_mib']:.0f} MiB "
              f"(after making the detections {row['peak_after_make_mib']:.0f}; detections {row['detections_mib']:.0f}); "
              f"poses.npz {row['file_bytes'] / 2 ** 20:.1f} MiB = {row['bytes_per_person_frame']:.0f} B per person-frame "
              f"(0.1's dense arrays: {row['dense_0_1_mib']:.0f} MiB); render {row['rendered_frames']} frames; "
              f"seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in s.items()))
        print("    peak RSS after each stage (MiB): " + ", ".join(f"{k} {v:.0f}" for k, v in row["peak_mib_after"].items()))
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        print(f"  ratio {b['hours'] / a['hours']:g}x the hours: person-frames x{b['person_frames'] / a['person_frames']:.2f}, "
              f"file x{b['file_bytes'] / a['file_bytes']:.2f}, peak RSS x{b['peak_mib'] / a['peak_mib']:.2f}")
    if args.skip_video:
        return 0
    crowd = SHARED / "videos" / "marathon_crowd.mkv"
    if not crowd.exists():
        print(f"skipped (b): {crowd} absent")
        return 0
    print(f"(b) wildpose run on the crowd video and on it {args.repeats}x in a row (fresh process each)")
    with tempfile.TemporaryDirectory() as tmp:
        from bench_pipeline import make_long_video  # the same long input bench_pipeline --long measures

        long_video = Path(tmp) / f"marathon_crowd_x{args.repeats}.mp4"
        make_long_video(crowd, args.repeats, long_video)
        one = _in_child(["run", str(crowd)])
        many = _in_child(["run", str(long_video)])
    print(f"  1x: peak RSS {one['peak_mib']:.0f} MiB, poses.npz {one['file_bytes'] / 1024:.0f} KiB, {one['seconds']:.0f} s")
    print(f"  {args.repeats}x: peak RSS {many['peak_mib']:.0f} MiB, poses.npz {many['file_bytes'] / 1024:.0f} KiB, "
          f"{many['seconds']:.0f} s")
    print(f"  ratio: peak RSS x{many['peak_mib'] / one['peak_mib']:.2f} (target <= 1.3), "
          f"file x{many['file_bytes'] / one['file_bytes']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
