"""End-to-end speed and memory of `wildpose run`, per stage, on the shared videos.

    python benchmarks/bench_pipeline.py [--videos DIR] [--long]

For each video: decode alone (the baseline, in the same process), decode + 2D (the default preset), tracking,
lifting, render, their sums, and the whole `run_video` (no render) with the default preset and with
`accurate`, in frames/s and as a ratio to the decode baseline; and the peak memory (RSS) of a whole
`wildpose run --render` in a fresh process. With --long, the same on a video 10x longer (walk_single.mp4
repeated), to show that memory does not grow with the video's length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def stage_times(video: Path) -> dict:
    import numpy as np

    from wildpose.detect2d.presets import DEFAULT_PRESET
    from wildpose.lift import load_lifter
    from wildpose.pipeline import RunOptions, detect_video, lift_tracks, make_detector, run_video, track_video
    from wildpose.render import render_video
    from wildpose.types import Result
    from wildpose.video import probe, read_frames

    info = probe(video)
    t = time.perf_counter()
    n = sum(1 for _ in read_frames(video))
    decode = time.perf_counter() - t

    # the default preset's detector, as `wildpose run` makes it (detect_video: decoding ahead on a thread, the
    # colour descriptors beside the model)
    detector = make_detector(RunOptions())
    t = time.perf_counter()
    people, stamps, _ = detect_video(video, detector)
    detect = time.perf_counter() - t

    t = time.perf_counter()
    tracks = track_video(people, np.asarray(stamps), RunOptions(), video)
    track = time.perf_counter() - t

    model = load_lifter()
    # the whole `wildpose run` (no render; camera motion, linking, world and writing included), with the default
    # preset and with `accurate`, the models loaded beforehand as the CLI does
    runs = {}
    for key, preset in (("run_fps", DEFAULT_PRESET), ("run_accurate_fps", "accurate")):
        options = RunOptions(preset=preset)
        run_detector = make_detector(options)
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_video(video, tmp, options, detector=run_detector, model=model)
        runs[key] = summary.frames / summary.seconds

    lift_tracks(tracks, info.image_size, info.fps, model=model)  # warm-up: BLAS threads, first allocations
    t = time.perf_counter()
    poses = lift_tracks(tracks, info.image_size, info.fps, model=model)
    lift = time.perf_counter() - t
    lifted_frames = tracks.num_rows

    result = Result.from_tracks(tracks, poses, info.fps, info.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        render_video(video, result, Path(tmp) / "render.mp4")
        render = time.perf_counter() - t
    return {"frames": n, "people": len(tracks), "lifted_person_frames": lifted_frames,
            "decode_fps": n / decode, "detect_fps": n / detect, "track_fps": n / track,
            "lift_fps": lifted_frames / lift, "render_fps": n / render,
            "end_to_end_fps": n / (detect + track + lift), "end_to_end_render_fps": n / (detect + track + lift + render),
            **runs}


def peak_memory_of_run(video: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of `wildpose run --render` on ``video`` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        # VmHWM is this process's own high-water mark; ru_maxrss would include the forking parent's RSS
        code = ("import re, sys, time; from wildpose.cli import main; t=time.perf_counter(); "
                f"rc = main(['run', {str(video)!r}, '-o', {tmp!r}, '--render', '-q']); "
                "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
                "print(int(hwm) / 1024, time.perf_counter()-t); sys.exit(rc)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rss, secs = out.stdout.split()[-2:]
    return float(rss), float(secs)


def make_long_video(video: Path, repeats: int, path: Path) -> None:
    """``video`` played ``repeats`` times in a row, re-encoded (a long input made from real footage)."""
    from wildpose.video import VideoWriter, probe, read_frames

    info = probe(video)
    with VideoWriter(path, info.width, info.height, info.fps) as writer:
        for _ in range(repeats):
            for frame in read_frames(video):
                writer.write(frame.image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--long", action="store_true", help="also measure memory on a 10x longer video")
    args = parser.parse_args()
    videos = [args.videos / "walk_single.mp4", args.videos / "marathon_crowd.mkv"]
    rows = {}
    for video in videos:
        s = stage_times(video)
        rss, secs = peak_memory_of_run(video)
        s.update(peak_rss_mib=rss, run_render_seconds=secs)
        rows[video.name] = s
        print(f"\n{video.name}: {s['frames']} frames, {s['people']} tracks, {s['lifted_person_frames']} person-frames")
        base = s["decode_fps"]
        for key in ("decode_fps", "detect_fps", "track_fps", "lift_fps", "render_fps", "end_to_end_fps",
                    "end_to_end_render_fps", "run_fps", "run_accurate_fps"):
            print(f"  {key:24s} {s[key]:10.1f}   x{s[key] / base:6.3f} of decode")
        print(f"  peak RSS of `wildpose run --render`: {rss:.0f} MiB ({secs:.1f} s)")
    if args.long:
        with tempfile.TemporaryDirectory() as tmp:
            long_video = Path(tmp) / "walk_x10.mp4"
            make_long_video(videos[0], 10, long_video)
            rss, secs = peak_memory_of_run(long_video)
            base = rows[videos[0].name]["peak_rss_mib"]
            rows["walk_single_x10"] = {"peak_rss_mib": rss, "run_render_seconds": secs}
            print(f"\nwalk_single.mp4 x10 (4440 frames): peak RSS {rss:.0f} MiB = x{rss / base:.3f} of the 1x run "
                  f"({secs:.1f} s)")
    print("\n" + json.dumps(rows, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
