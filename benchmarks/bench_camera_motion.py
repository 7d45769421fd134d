"""Cost of the camera-rotation estimate (wildpose.camera_motion) against the 2D detection it rides along with.

Usage::

    python benchmarks/bench_camera_motion.py [--shared ../shared] [--video walk_single.mp4] [--frames N]
                                             [--pipeline]

Decodes the frames once, then times MoveNet detection (the pipeline's default detector) and the estimator on
the same frames, alternating frame by frame in one process so that load from other processes slows both alike.
Prints frames/s of each and the estimator's time as a share of detection's. ``--pipeline`` also times
``process_video`` with and without the estimate (the whole pipeline: decode, detect, track, lift, world).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from wildpose.camera_motion import CameraMotionEstimator
from wildpose.pipeline import make_detector, process_video, RunOptions
from wildpose.video import read_frames

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    parser.add_argument("--video", default="walk_single.mp4")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames")
    parser.add_argument("--pipeline", action="store_true", help="also time process_video with and without")
    args = parser.parse_args()
    path = Path(args.shared) / "data" / "videos" / args.video
    frames = []
    for frame in read_frames(path):
        frames.append(frame.image)
        if args.frames and len(frames) >= args.frames:
            break
    detector = make_detector()
    detector(frames[0])  # warm-up: interpreter creation is not per-frame cost
    estimator = CameraMotionEstimator()
    detect_s = motion_s = 0.0
    for image in frames:
        start = time.perf_counter()
        people = detector(image)
        middle = time.perf_counter()
        estimator.update(image, people)
        detect_s += middle - start
        motion_s += time.perf_counter() - middle
    motion = estimator.result()
    n = len(frames)
    h, w = frames[0].shape[:2]
    print(f"{args.video}: {n} frames {w}x{h}; camera turns up to {motion.max_angle_deg:.2f} deg, "
          f"{int(motion.held.sum())} frames held, median inliers {np.median(motion.inliers[1:]):.0f}")
    print(f"MoveNet detection: {n / detect_s:7.1f} frames/s")
    print(f"camera motion:     {n / motion_s:7.1f} frames/s  ({1000 * motion_s / n:.2f} ms/frame)")
    print(f"camera motion / detection time: {motion_s / detect_s:.3f}")
    if args.pipeline:
        times = {}
        for static in (False, True, False, True):  # alternate, keep the faster of two runs each
            start = time.perf_counter()
            result, _ = process_video(path, RunOptions(static_camera=static))
            seconds = time.perf_counter() - start
            times[static] = min(times.get(static, float("inf")), seconds)
        frames_total = len(result.timestamps)
        print(f"pipeline, static camera assumed: {frames_total / times[True]:7.1f} frames/s")
        print(f"pipeline, rotation estimated:    {frames_total / times[False]:7.1f} frames/s")
        print(f"pipeline time with / without the estimate: {times[False] / times[True]:.3f}")


if __name__ == "__main__":
    main()
