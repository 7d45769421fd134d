"""How well the key-frame detector follows fast motion: walk_single.mp4 with every k-th frame kept (the man then
moves k times as far between frames, as a person moving k times as fast would), for the window margins given.

    python benchmarks/bench_fast_motion.py [--steps 1 3 5] [--margins 0.15 0.3]

Per step and margin: the frames (of those kept) where the man is found (top person >= 0.2) against the
768-pixel full-frame pass (pseudo ground truth, as bench_speed.py), PCK@0.1 of his height against it, and the
key frames the detector needed (a lost person forces one).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

from wildpose.detect2d import MoveNetMultiPose
from wildpose.detect2d.keyframes import KeyframeDetector
from wildpose.detect2d.presets import PRESETS
from wildpose.video import read_frames

ROOT = Path(__file__).resolve().parents[1]


def pck(people, reference, fraction=0.1):
    """PCK of the top person against the reference's top person, over its keypoints scoring >= 0.3."""
    good = reference.keypoints[0, :, 2] >= 0.3
    if good.sum() < 5:
        return None
    height = max(np.ptp(reference.keypoints[0, good, 1]), 1.0)
    d = np.linalg.norm(people.keypoints[0, good, :2] - reference.keypoints[0, good, :2], axis=1)
    return float((d <= fraction * height).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared")))
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--margins", type=float, nargs="+", default=[0.15, 0.3])
    args = parser.parse_args()
    video = args.shared / "data" / "videos" / "walk_single.mp4"
    if not video.exists():
        print(f"skipped: {video} absent")
        return 0
    frames = list(read_frames(video))
    reference_model = MoveNetMultiPose(768, refine=False, tiles=1)
    reference = [reference_model.detect_all(f.image) for f in frames]
    reference = [r[r.scores >= 0.2] for r in reference]
    model = MoveNetMultiPose()
    print(f"{'step':>4} {'margin':>6} {'frames with him':>15} {'found':>5} {'PCK@0.1':>7} {'key frames':>10}")
    for step in args.steps:
        kept = frames[::step]
        for margin in args.margins:
            detector = KeyframeDetector(model, dataclasses.replace(PRESETS["balanced"].keyframes, margin=margin))
            found = [people for _, people in detector.follow(kept)]
            visible = [i for i in range(len(kept)) if len(reference[i * step])]
            hits = [i for i in visible if (found[i].scores >= 0.2).any()]
            scores = [pck(found[i], reference[i * step]) for i in hits]
            scores = [v for v in scores if v is not None]
            print(f"{step:>4} {margin:>6.2f} {len(visible):>15} {len(hits):>5} {np.mean(scores):>7.3f} "
                  f"{detector.key_frames:>10}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
