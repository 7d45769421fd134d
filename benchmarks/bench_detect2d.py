"""Speed and keypoint quality of the 2D stage on the shared videos (numbers for docs/DETECTION.md).

Usage::

    python benchmarks/bench_detect2d.py [--shared ../shared] [--frames N] [--part walk|margins|crowd|threads|all]

walk: full frame at 256 / 384 / 512 vs 256 + crops, against a slow full-frame reference at 768 used as pseudo
ground truth (no labels exist for these videos): mean keypoint score, frames with a confident person, false
people (frames where the one man is absent or a second person appears), mean pixel distance and PCK@0.1 of the
person's height to the reference, temporal jitter (second difference of confident keypoints), frames/s of
detection alone and of decode + detection. Speeds print as ratios to the plain 256 pass, measured in the same
process. margins: the crop's margin. crowd: people per frame and speed with tiling. threads: 1 vs 2
interpreter threads.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from wildpose.detect2d import CropConfig, MoveNetMultiPose
from wildpose.video import read_frames

ROOT = Path(__file__).resolve().parents[1]

# walk_single.mp4: the man is wholly out of view in frames 0-1 and from frame 297 on (checked by eye)
ABSENT_BEFORE, ABSENT_AFTER = 2, 296


def decode(path: Path, limit: int | None = None) -> list[np.ndarray]:
    frames = []
    for frame in read_frames(path):
        frames.append(frame.image)
        if limit and len(frames) >= limit:
            break
    return frames


def run(detectors: dict[str, MoveNetMultiPose], frames: list[np.ndarray]) -> tuple[dict, dict]:
    """All candidates per frame (before the final threshold) and detection frames/s, per detector.

    The detectors take turns frame by frame, so that load from other processes on a shared machine slows
    them all alike and the ratios between them stay meaningful.
    """
    for detector in detectors.values():
        detector.detect_all(frames[0])  # warm-up: interpreter creation is not per-frame cost
    results = {name: [] for name in detectors}
    seconds = dict.fromkeys(detectors, 0.0)
    for frame in frames:
        for name, detector in detectors.items():
            start = time.perf_counter()
            results[name].append(detector.detect_all(frame))
            seconds[name] += time.perf_counter() - start
    return results, {name: len(frames) / seconds[name] for name in detectors}


def end_to_end_fps(detector: MoveNetMultiPose, path: Path, limit: int | None) -> float:
    detector(decode(path, 1)[0])
    start = time.perf_counter()
    count = 0
    for frame in read_frames(path):
        detector(frame.image)
        count += 1
        if limit and count >= limit:
            break
    return count / (time.perf_counter() - start)


def top_person(people) -> tuple[np.ndarray, np.ndarray] | None:
    if len(people) == 0:
        return None
    i = int(np.argmax(people.scores))
    return people.keypoints[i], people.boxes[i]


def compare(result: list, reference: list, threshold: float) -> dict:
    """Quality of one configuration's main person against the reference's main person, frame by frame."""
    n = len(result)
    scores, dists, pck, confident, false_people = [], [], [], 0, 0
    tracks = np.full((n, 17, 3), np.nan)
    for t, (people, ref_people) in enumerate(zip(result, reference)):
        kept = people[people.scores >= threshold]
        absent = t < ABSENT_BEFORE or t > ABSENT_AFTER
        false_people += len(kept) if absent else max(0, len(kept) - 1)
        top = top_person(kept)
        if top is None:
            continue
        confident += 1
        kp, _ = top
        scores.append(kp[:, 2].mean())
        tracks[t] = kp
        ref = top_person(ref_people[ref_people.scores >= 0.2])
        if ref is None:
            continue
        ref_kp, ref_box = ref
        good = ref_kp[:, 2] >= 0.3
        if good.sum() < 5:
            continue
        d = np.linalg.norm(kp[good, :2] - ref_kp[good, :2], axis=1)
        height = np.ptp(ref_kp[good, 1])
        dists.append(d.mean())
        pck.append((d <= 0.1 * max(height, 1.0)).mean())
    # jitter: |p[t+1] - 2 p[t] + p[t-1]| over keypoints confident in all three frames
    acc = []
    for t in range(1, n - 1):
        window = tracks[t - 1 : t + 2]
        if np.isnan(window).any():
            continue
        ok = (window[..., 2] >= 0.3).all(0)
        if ok.any():
            second = window[2, ok, :2] - 2 * window[1, ok, :2] + window[0, ok, :2]
            acc.extend(np.linalg.norm(second, axis=1))
    return {
        "confident_frames": confident,
        "mean_kp_score": float(np.mean(scores)) if scores else float("nan"),
        "false_people": false_people,
        "dist_px": float(np.mean(dists)) if dists else float("nan"),
        "pck10": float(np.mean(pck)) if pck else float("nan"),
        "jitter_px": float(np.median(acc)) if acc else float("nan"),
        "compared": len(dists),
    }


WALK_CONFIGS = {
    "256": dict(input_size=256, refine=False),
    "384": dict(input_size=384, refine=False),
    "512": dict(input_size=512, refine=False),
    "256+crops": dict(input_size=256, refine=True),
    "256+crops256": dict(input_size=256, refine=True, crop=CropConfig(size=256)),
    "256+crops160": dict(input_size=256, refine=True, crop=CropConfig(size=160)),
    "256+crops(kp)": dict(input_size=256, refine=True, crop=CropConfig(merge="keypoint")),
    "256+crops(person)": dict(input_size=256, refine=True, crop=CropConfig(merge="person")),
    "192+crops": dict(input_size=192, refine=True),
}
MARGIN_CONFIGS = {"256": dict(input_size=256, refine=False)} | {
    f"crops margin {m}": dict(input_size=256, refine=True, crop=CropConfig(margin=m)) for m in (0.1, 0.2, 0.3, 0.4)
}


def part_walk(shared: Path, limit: int | None, threads: int | None, configs: dict = WALK_CONFIGS) -> None:
    path = shared / "data" / "videos" / "walk_single.mp4"
    frames = decode(path, limit)
    print(f"walk_single.mp4: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, threads={threads}")
    start = time.perf_counter()
    decode(path, limit)
    decode_fps = len(frames) / (time.perf_counter() - start)
    print(f"decode alone: {decode_fps:.0f} frames/s")
    reference, ref_fps = run({"768": MoveNetMultiPose(768, threads, refine=False, tiles=1)}, frames)
    reference = reference["768"]
    print(f"reference: full frame at 768, {ref_fps['768']:.1f} frames/s")
    detectors = {name: MoveNetMultiPose(num_threads=threads, tiles=1, **options) for name, options in configs.items()}
    results, fps = run(detectors, frames)
    e2e = {name: end_to_end_fps(detectors[name], path, limit) for name in ("256", "256+crops") if name in detectors}
    print("the man: 'conf.fr' frames with a person scoring >= thr (the reference has it in 263 frames when "
          "thr=0.2); 'false': people kept where he is absent, or beyond the first")
    header = (f"{'config':18s} {'thr':>4s} {'det fps':>8s} {'ratio':>6s} {'conf.fr':>7s} "
              f"{'kp score':>8s} {'false':>5s} {'dist px':>7s} {'PCK@.1':>6s} {'jitter':>6s}")
    print(header)
    base_fps = fps["256"]
    for name in configs:
        for thr in (0.2, 0.3):
            m = compare(results[name], reference, thr)
            print(f"{name:18s} {thr:4.2f} {fps[name]:8.1f} {fps[name] / base_fps:6.2f} {m['confident_frames']:7d} "
                  f"{m['mean_kp_score']:8.3f} {m['false_people']:5d} {m['dist_px']:7.2f} {m['pck10']:6.3f} "
                  f"{m['jitter_px']:6.2f}")
    m = compare(reference, reference, 0.2)
    print(f"{'768 (reference)':18s} {0.2:4.2f} {ref_fps['768']:8.1f} {ref_fps['768'] / base_fps:6.2f} "
          f"{m['confident_frames']:7d} {m['mean_kp_score']:8.3f} {m['false_people']:5d} {'-':>7s} {'-':>6s} "
          f"{m['jitter_px']:6.2f}")
    if len(e2e) == 2:
        print("decode + detect, frames/s: " + ", ".join(f"{k} {v:.1f}" for k, v in e2e.items())
              + f" (ratio {e2e['256+crops'] / e2e['256']:.2f})")


def part_crowd(shared: Path, limit: int | None, threads: int | None) -> None:
    path = shared / "data" / "videos" / "marathon_crowd.mkv"
    frames = decode(path, limit)
    print(f"marathon_crowd.mkv: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}")
    configs = {
        "tiles=1": dict(tiles=1, refine=False),
        "tiles=2": dict(tiles=2, refine=False),
        "tiles=3": dict(tiles=3, refine=False),
        "tiles=auto": dict(tiles="auto", refine=False),
        "tiles=1+crops": dict(tiles=1, refine=True),
        "tiles=auto+crops": dict(tiles="auto", refine=True),
        "512 tiles=1": dict(input_size=512, tiles=1, refine=False),
    }
    detectors = {name: MoveNetMultiPose(num_threads=threads, **options) for name, options in configs.items()}
    results, fps = run(detectors, frames)
    base_fps = fps["tiles=1"]
    print("mean people per frame scoring >= thr; 'kp score': mean keypoint score of those >= 0.2")
    print(f"{'config':18s} {'det fps':>8s} {'ratio':>6s} " + " ".join(f"{'ppl>=' + str(t):>8s}" for t in (0.2, 0.3, 0.4))
          + f" {'kp score':>8s}")
    for name, result in results.items():
        counts = [np.mean([(p.scores >= t).sum() for p in result]) for t in (0.2, 0.3, 0.4)]
        kp = np.concatenate([p.keypoints[p.scores >= 0.2, :, 2].ravel() for p in result])
        print(f"{name:18s} {fps[name]:8.1f} {fps[name] / base_fps:6.2f} " + " ".join(f"{c:8.2f}" for c in counts)
              + f" {kp.mean():8.3f}")


def part_threads(shared: Path, limit: int | None) -> None:
    frames = decode(shared / "data" / "videos" / "walk_single.mp4", limit)
    print(f"threads (os.cpu_count()={os.cpu_count()}), walk_single.mp4 detection frames/s")
    detectors = {
        (refine, threads): MoveNetMultiPose(num_threads=threads, refine=refine)
        for refine in (False, True)
        for threads in (1, 2)
    }
    _, fps = run(detectors, frames)
    for (refine, threads), value in fps.items():
        print(f"  refine={refine!s:5s} threads={threads}: {value:6.1f} frames/s, "
              f"ratio to 1 thread {value / fps[(refine, 1)]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("WILDPOSE_SHARED", ROOT.parent / "shared")))
    parser.add_argument("--frames", type=int, default=None, help="limit frames per video (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--part", choices=("walk", "margins", "crowd", "threads", "all"), default="all")
    args = parser.parse_args()
    if not (args.shared / "data" / "videos").is_dir():
        raise SystemExit(f"{args.shared / 'data' / 'videos'} is absent: pass --shared")
    if args.part in ("walk", "all"):
        part_walk(args.shared, args.frames, args.threads)
    if args.part == "margins":
        part_walk(args.shared, args.frames, args.threads, MARGIN_CONFIGS)
    if args.part in ("crowd", "all"):
        part_crowd(args.shared, args.frames, args.threads)
    if args.part in ("threads", "all"):
        part_threads(args.shared, args.frames)


if __name__ == "__main__":
    main()
