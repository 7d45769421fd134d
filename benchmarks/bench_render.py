"""Render speed and memory: frames/s of render_video on the shared videos, against plain decode + encode.

For each video the poses come from the real pipeline stages (MoveNet, the tracker, and the shipped lifter, or,
while none is shipped, real CMU mocap walks for every track's 3D pose). Each measurement then runs in a fresh
child process, so its peak RSS (VmHWM) is the renderer's own (imports included), not the detector's; the
growth of the resident size during the frame loop (sampled every 5 ms) is the decoder's and encoder's
buffers plus ours, bounded by the frame size, not the video's length:

- ``transcode``: decode + encode of the input as it is (the floor any render pays),
- ``canvas``: decode + encode at the render's output size (input beside a blank panel): the same encoder work
  as the render, without drawing,
- ``render``: render_video.

Usage: python benchmarks/bench_render.py [--videos walk_single.mp4 marathon_crowd.mkv] [--shared DIR]
Target: render >= 15 frames/s on the 2-core development machine for walk_single.mp4.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared"))
WALK_BVH = "cmu_motion_prediction_subset/test/walking/walking_1.bvh"


def _mocap_poses(tracks, mocap_dir: Path) -> np.ndarray:
    """(N, 17, 3) real mocap walking poses for every row (person-frame) of the tracks (camera axes,
    root-relative), each track a different stretch of the clip and a different heading."""
    from wildpose.lift.train.rigs import load_clip

    clip = load_clip(mocap_dir / WALK_BVH)
    h36m = (clip.h36m - clip.h36m[:, :1]) * np.array([1.0, -1.0, -1.0], np.float32)  # Y up -> camera y down
    poses = np.full((tracks.num_rows, 17, 3), np.nan, np.float32)
    for p in range(len(tracks)):
        a = 1.3 * p
        turn = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]], np.float32)
        frames = (tracks.frames(p) * 2 + 17 * p) % len(h36m)
        poses[tracks.track(p)] = h36m[frames] @ turn.T
    return poses


def build_result(video: Path, out: Path) -> dict:
    from wildpose.formats.result import save_result
    from wildpose.pipeline import RunOptions, detect_video, lift_tracks, track_video
    from wildpose.types import Result

    t0 = time.perf_counter()
    people, timestamps, info = detect_video(video)
    tracks = track_video(people, timestamps, RunOptions(), video)
    try:
        poses = lift_tracks(tracks, info.image_size, info.fps)
        source = "shipped lifter"
    except Exception as exc:  # no lifter shipped yet: real mocap poses keep the drawing load realistic
        poses = _mocap_poses(tracks, SHARED / "data" / "mocap")
        source = f"CMU mocap walk ({type(exc).__name__}: {exc})"
    result = Result.from_tracks(tracks, poses, info.fps, info.image_size)
    save_result(result, out)
    return {"frames": len(timestamps), "tracks": len(tracks), "people_per_frame": tracks.num_rows / len(timestamps),
            "poses_3d": source, "seconds": time.perf_counter() - t0}


def child(mode: str, video: Path, result_path: Path, out_dir: Path) -> dict:
    """One measurement in this (fresh) process; returns frames, seconds and the process's peak RSS."""
    from wildpose.formats.result import load_result
    from wildpose.render import render_video
    from wildpose.video import VideoWriter, probe, read_frames

    result = load_result(result_path)
    info = probe(video)
    out = out_dir / f"{mode}.mp4"
    # the peak so far is the imports and the loaded result; sample the resident size during the loop
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    start_rss, peak = rss(), [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], rss())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    n = 0
    if mode == "render":
        n = render_video(video, result, out)
    else:
        h = info.height
        extra = h + h % 2 if mode == "canvas" else 0
        blank = np.zeros((h, extra, 3), np.uint8)
        with VideoWriter(out, info.width + extra, h, info.fps) as writer:
            for frame in read_frames(video):
                writer.write(np.concatenate([frame.image, blank], 1) if extra else frame.image)
                n += 1
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    # VmHWM, not getrusage's ru_maxrss: a forked child inherits its parent's ru_maxrss (the detector's peak)
    with open("/proc/self/status") as f:
        peak_kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return {"frames": n, "seconds": seconds, "fps": n / seconds, "peak_rss_mib": peak_kib / 1024,
            "loop_rss_mib": max(0, peak[0] - start_rss) / 2 ** 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", nargs="*", default=["walk_single.mp4", "marathon_crowd.mkv"])
    parser.add_argument("--shared", type=Path, default=SHARED)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "VIDEO", "RESULT", "OUT_DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, video, result, out_dir = args.child
        print(json.dumps(child(mode, Path(video), Path(result), Path(out_dir))))
        return

    print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.videos:
            video = args.shared / "data" / "videos" / name
            if not video.exists():
                print(f"{name}: skipped, {video} is absent")
                continue
            result_path = tmp / f"{video.stem}.npz"
            built = build_result(video, result_path)
            print(f"\n{name}: {built['frames']} frames, {built['tracks']} tracks, "
                  f"{built['people_per_frame']:.1f} people/frame; 3D from {built['poses_3d']} "
                  f"(built in {built['seconds']:.1f} s)")
            rows = {}
            for mode in ("transcode", "canvas", "render"):
                proc = subprocess.run([sys.executable, __file__, "--child", mode, str(video), str(result_path),
                                       str(tmp)], capture_output=True, text=True, check=True)
                rows[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            for mode, r in rows.items():
                ratio = r["seconds"] / rows["canvas"]["seconds"]
                print(f"  {mode:9s} {r['frames']:4d} frames {r['seconds']:6.2f} s {r['fps']:7.1f} frames/s "
                      f"time x{ratio:4.2f} of canvas  peak RSS {r['peak_rss_mib']:6.1f} MiB "
                  f"(+{r['loop_rss_mib']:.1f} MiB during the frame loop)")
            fps = rows["render"]["fps"]
            print(f"  render: {fps:.1f} frames/s ({'meets' if fps >= 15 else 'MISSES'} the 15 frames/s target), "
                  f"{rows['render']['seconds'] / rows['transcode']['seconds']:.2f}x the time of a plain transcode")


if __name__ == "__main__":
    main()
