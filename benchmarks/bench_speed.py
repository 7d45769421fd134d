"""Speed of the 2D stage and of the whole `wildpose run`, per preset, with its quality (docs/DETECTION.md).

Usage::

    python benchmarks/bench_speed.py [--shared ../shared] [--repeats 3] [--frames N] [--video walk|crowd|both]

For each shared video, measured in this one process and interleaved (each repetition runs the baseline and then
every configuration, so that load from other processes slows them alike):

- the baseline: decode + one bare MoveNet-256 pass per frame (``tiles=1``, no crop pass), measured before the
  2D measurements and again before each whole run;
- per preset (``accurate`` is the previous default, exactly): decode + 2D, and the whole ``run_video`` (no
  render, the CLI's defaults otherwise; the detector and the lifter loaded beforehand, as the CLI does);

printed as ratios to the baseline and to ``accurate`` (median over the repetitions, [min, max] beside), never as
absolute times alone. Quality, from the first repetition, against a slow full-frame MoveNet pass at 768 pixels
(pseudo ground truth: no labels exist): on walk_single.mp4 the frames where the man is found (top person >= 0.2;
the 768 pass finds him in 263) and PCK@0.1 of his height; on marathon_crowd.mkv people per frame >= 0.2, the
tracks' mean length (frames) after tracking, and PCK@0.1 of the people matched to the 768 pass's (OKS >= 0.3).
MediaPipe Pose is measured too when installed (it finds one person per frame).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_detect2d import compare  # noqa: E402  (the walk's quality measures, shared with that benchmark)

from wildpose.detect2d import MoveNetMultiPose  # noqa: E402
from wildpose.detect2d.crops import keypoint_similarity  # noqa: E402
from wildpose.detect2d.keyframes import KeyframeDetector  # noqa: E402
from wildpose.detect2d.presets import PRESETS  # noqa: E402
from wildpose.lift import load_lifter  # noqa: E402
from wildpose.pipeline import RunOptions, make_detector, run_video, track_video  # noqa: E402
from wildpose.types import People2D  # noqa: E402
from wildpose.video import probe, read_frames  # noqa: E402

VIDEOS = {"walk": "walk_single.mp4", "crowd": "marathon_crowd.mkv"}


def decode_detect(path: Path, detector, limit: int | None) -> tuple[float, list[People2D]]:
    """Frames/s of decode + ``detector`` on every frame, and what it found."""
    if hasattr(detector, "reset"):
        detector.reset()
    found = []
    start = time.perf_counter()
    # a detector that follows people takes the frames itself, as pipeline.detect_video gives them
    frames = read_frames(path)
    found_in = detector.follow(frames) if hasattr(detector, "follow") else ((f, detector(f.image)) for f in frames)
    for _, people in found_in:
        found.append(people)
        if limit and len(found) >= limit:
            break
    return len(found) / (time.perf_counter() - start), found


def whole_run(path: Path, options: RunOptions, detector, model, limit: int | None, fps: float) -> float:
    """Frames/s of ``run_video`` (as the CLI reports it)."""
    end = limit / fps if limit else None
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_video(path, tmp, dataclasses.replace(options, end=end), detector=detector, model=model)
    return summary.frames / summary.seconds


def crowd_quality(result: list[People2D], reference: list[People2D], timestamps: np.ndarray,
                  image_size: tuple[int, int]) -> dict:
    pck = []
    for people, ref in zip(result, reference):
        people, ref = people[people.scores >= 0.2], ref[ref.scores >= 0.2]
        if not len(people) or not len(ref):
            continue
        oks = keypoint_similarity(ref, people)
        for i in range(len(ref)):
            j = int(np.argmax(oks[i]))
            good = ref.keypoints[i, :, 2] >= 0.3
            if oks[i, j] < 0.3 or good.sum() < 5:
                continue
            d = np.linalg.norm(people.keypoints[j, good, :2] - ref.keypoints[i, good, :2], axis=1)
            pck.append((d <= 0.1 * max(np.ptp(ref.keypoints[i, good, 1]), 1.0)).mean())
    tracks = track_video(result, timestamps, RunOptions(), None, image_size)
    return {"people": float(np.mean([(p.scores >= 0.2).sum() for p in result])),
            "track_len": float(np.mean(tracks.track_lengths)) if len(tracks) else 0.0,
            "tracks": len(tracks), "pck10": float(np.mean(pck)) if pck else float("nan"), "matched": len(pck)}


def mediapipe_detector():
    """MediaPipe Pose (one person) as a People2D detector, or None when mediapipe is not installed."""
    try:
        import mediapipe as mp
    except ImportError:
        return None
    pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1)
    coco = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]

    def detect(image):
        out = pose.process(image)
        if out.pose_landmarks is None:
            return People2D.empty()
        h, w = image.shape[:2]
        lm = out.pose_landmarks.landmark
        kp = np.array([[lm[i].x * w, lm[i].y * h, lm[i].visibility] for i in coco], np.float32)
        box = [*kp[:, :2].min(0), *kp[:, :2].max(0), float(kp[:, 2].mean())]
        return People2D(kp[None], np.asarray(box, np.float32)[None])

    return detect


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} [{min(values):.2f}, {max(values):.2f}]"


def bench_video(path: Path, repeats: int, limit: int | None) -> None:
    info = probe(path)
    bare = MoveNetMultiPose(256, refine=False, tiles=1)
    options = {name: RunOptions(preset=name) for name in PRESETS}
    detectors = {name: make_detector(opts) for name, opts in options.items()}
    # what the restarts (which make split runs exact) cost: balanced never starting afresh
    options["balanced, no restart"] = options["balanced"]
    detectors["balanced, no restart"] = KeyframeDetector(
        detectors["balanced"].detector, dataclasses.replace(PRESETS["balanced"].keyframes, restart_seconds=None))
    # and what interpolating buys: balanced with windows on every frame
    options["balanced, every frame"] = options["balanced"]
    detectors["balanced, every frame"] = KeyframeDetector(
        detectors["balanced"].detector, dataclasses.replace(PRESETS["balanced"].keyframes, interpolate_max_gap=None))
    # and what the tighter windows buy: balanced with the margin it had before (0.3 of a person's size)
    options["balanced, margin 0.3"] = options["balanced"]
    detectors["balanced, margin 0.3"] = KeyframeDetector(
        detectors["balanced"].detector, dataclasses.replace(PRESETS["balanced"].keyframes, margin=0.3))
    # and interpolating every other frame in crowds instead of two of three
    options["balanced, every other interpolated"] = options["balanced"]
    detectors["balanced, every other interpolated"] = KeyframeDetector(
        detectors["balanced"].detector, dataclasses.replace(PRESETS["balanced"].keyframes, interpolate_frames=1,
                                                            interpolate_max_gap=0.085))
    extra = {}
    mp_detector = mediapipe_detector()
    if mp_detector is not None:
        extra["mediapipe pose"] = mp_detector
    model = load_lifter()
    print(f"\n{path.name}: {info.width}x{info.height}, {limit or info.num_frames} frames; {time.strftime('%Y-%m-%d %H:%M')} "
          f"UTC, os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    print("mediapipe: " + ("measured (one person per frame)" if extra else "not installed, skipped"))
    decode_detect(path, bare, 5)  # warm-up: interpreters, the lifter's first allocations, imports
    for name in detectors:
        decode_detect(path, detectors[name], 30)
        whole_run(path, options[name], detectors[name], model, 100, info.fps)
    det_ratio = {name: [] for name in [*detectors, *extra]}
    run_ratio = {name: [] for name in detectors}
    run_vs_acc = {name: [] for name in detectors}
    det_vs_acc = {name: [] for name in detectors}
    passes = {}
    results = {}
    for r in range(repeats):
        base_fps, _ = decode_detect(path, bare, limit)
        det_fps, run_fps = {}, {}
        for name, detector in [*detectors.items(), *extra.items()]:
            det_fps[name], found = decode_detect(path, detector, limit)
            if r == 0:
                results[name] = found
                if hasattr(detector, "passes"):
                    passes[name] = (detector.passes, detector.key_frames, detector.lost_frames,
                                    detector.frames + detector.interpolated, detector.restarts, detector.interpolated)
            det_ratio[name].append(det_fps[name] / base_fps)
        for name, detector in detectors.items():
            # a fresh baseline next to each run: load from other processes changes within a repetition
            base_fps, _ = decode_detect(path, bare, limit)
            run_fps[name] = whole_run(path, options[name], detector, model, limit, info.fps)
            run_ratio[name].append(run_fps[name] / base_fps)
        for name in detectors:
            det_vs_acc[name].append(det_fps[name] / det_fps["accurate"])
            run_vs_acc[name].append(run_fps[name] / run_fps["accurate"])
        print(f"  repetition {r + 1}: last baseline {base_fps:.1f} frames/s; run " +
              ", ".join(f"{n} {v:.1f}" for n, v in run_fps.items()), flush=True)
    frames = len(results["accurate"])
    t = time.perf_counter()
    reference_detector = MoveNetMultiPose(768, refine=False, tiles=1)
    reference = [reference_detector.detect_all(f.image) for f, _ in zip(read_frames(path), range(frames))]
    ref_fps = frames / (time.perf_counter() - t)
    print(f"  (reference: full frame at 768, {ref_fps / base_fps:.2f}x the last baseline's speed "
          "in its own run)")
    timestamps = np.arange(frames) / info.fps
    walk = "walk" in path.name
    head = ("found  PCK@.1  false" if walk else "ppl>=.2  tracks  mean len  PCK@.1 (matched)")
    print(f"  {'config':30s} {'2D / baseline':>20s} {'2D / accurate':>20s} {'run / baseline':>20s} "
          f"{'run / accurate':>20s}  {head}  passes/frame (key, lost, restarts, interpolated)")
    for name in [*detectors, *extra]:
        if walk:
            m = compare(results[name], reference, 0.2)
            quality = f"{m['confident_frames']:5d}  {m['pck10']:6.3f}  {m['false_people']:5d}"
        else:
            m = crowd_quality(results[name], reference, timestamps, info.image_size)
            quality = f"{m['people']:7.2f}  {m['tracks']:6d}  {m['track_len']:8.1f}  {m['pck10']:6.3f} ({m['matched']})"
        p = passes.get(name)
        cost = f"{p[0] / p[3]:.2f} ({p[1]}, {p[2]}, {p[4]}, {p[5]})" if p else "-"
        cols = [fmt(det_ratio[name]), fmt(det_vs_acc[name]) if name in det_vs_acc else "-",
                fmt(run_ratio[name]) if name in run_ratio else "-", fmt(run_vs_acc[name]) if name in run_vs_acc else "-"]
        print(f"  {name:30s} " + " ".join(f"{c:>20s}" for c in cols) + f"  {quality}  {cost}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared")))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=None, help="limit frames per video (default: all)")
    parser.add_argument("--video", choices=("walk", "crowd", "both"), default="both")
    args = parser.parse_args()
    videos = args.shared / "data" / "videos"
    if not videos.is_dir():
        raise SystemExit(f"{videos} is absent: pass --shared")
    for key, name in VIDEOS.items():
        if args.video in (key, "both"):
            bench_video(videos / name, args.repeats, args.frames)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
