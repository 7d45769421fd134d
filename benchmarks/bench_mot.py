"""Identity metrics the way multi-object tracking is judged (py-motmetrics: IDF1, MOTA, identity switches,
recall, precision), online tracking against offline linking.

    python benchmarks/bench_mot.py --composites                       # the walker composites (ground truth by construction)
    python benchmarks/bench_mot.py --images SEQ/img1 --gt SEQ/gt/gt.txt --fps 7   # any MOTChallenge-format sequence

The second form is how the issue's annotated pedestrian sequence (795 frames, 19 people; MOTChallenge layout:
a folder of frames and ``gt.txt`` lines ``frame,id,x,y,w,h,conf,class,visibility``, frames from 1) is measured;
that sequence is not on this machine. Rows with ``conf`` 0 (ignore regions) are left out.

A track's box in a frame is the box around its keypoints with a score of at least 0.2, widened by 15% of its
height on each side and raised by 15% at the top (the keypoints stop at the ankles, eyes and wrists; an
annotated box includes the feet, the crown and the clothes): the issue's "boxes from the keypoints". Matching:
IoU >= 0.4 (motmetrics' ``max_iou`` = 0.6). Interpolated rows (filled over a short gap) count as hypotheses,
as they are in the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
MIN_SCORE = 0.2
PAD = 0.15


def keypoint_boxes(tracks) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """frame -> (track ids (n,), boxes (n, 4) x, y, w, h) from each row's confident keypoints."""
    k = tracks.keypoints_2d
    ok = k[..., 2] >= MIN_SCORE
    ok[~ok.any(1)] = True  # a row with no confident keypoint: all of them
    x = np.where(ok, k[..., 0], np.nan)
    y = np.where(ok, k[..., 1], np.nan)
    x1, x2, y1, y2 = np.nanmin(x, 1), np.nanmax(x, 1), np.nanmin(y, 1), np.nanmax(y, 1)
    h = np.maximum(y2 - y1, 1.0)
    boxes = np.stack([x1 - PAD * h, y1 - PAD * h, x2 - x1 + 2 * PAD * h, y2 - y1 + 1.5 * PAD * h], 1)
    ids = tracks.track_ids[tracks.row_track()]
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for f in np.unique(tracks.frame_index):
        rows = tracks.frame_index == f
        out[int(f)] = (ids[rows], boxes[rows])
    return out


def read_mot_gt(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """A MOTChallenge gt.txt -> frame (from 0) -> (ids, boxes x, y, w, h); rows with conf 0 left out."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape[1] > 6:
        rows = rows[rows[:, 6] != 0]
    out = {}
    for f in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == f]
        out[f - 1] = (r[:, 1].astype(int), r[:, 2:6])
    return out


def iou_distances(a: np.ndarray, b: np.ndarray, min_iou: float = 0.4) -> np.ndarray:
    """1 - IoU between boxes (x, y, w, h), NaN (no match possible) below ``min_iou``. (motmetrics 1.4's own
    ``iou_matrix`` calls ``np.asfarray``, which numpy 2 removed.)"""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), -1)
    union = np.prod(a[:, 2:], -1)[:, None] + np.prod(b[:, 2:], -1)[None] - inter
    d = 1 - inter / np.maximum(union, 1e-9)
    return np.where(d <= 1 - min_iou, d, np.nan)


def evaluate(gt: dict, hyp: dict, frames: int) -> dict:
    """motmetrics over ``frames`` frames: idf1, mota, switches, recall, precision, and the number of track ids."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    empty = (np.zeros(0, int), np.zeros((0, 4)))
    for f in range(frames):
        g_ids, g_boxes = gt.get(f, empty)
        h_ids, h_boxes = hyp.get(f, empty)
        acc.update(list(g_ids), list(h_ids), iou_distances(g_boxes, h_boxes))
    m = mm.metrics.create().compute(acc, metrics=["idf1", "mota", "num_switches", "recall", "precision",
                                                  "num_unique_objects", "num_fragmentations"], name="x")
    tracks = len({int(i) for ids, _ in hyp.values() for i in ids})
    return {"tracks": tracks, **{k: float(m[k].iloc[0]) for k in m.columns}}


def _print(rows) -> None:
    print("| clip | tracking | people | tracks | IDF1 | MOTA | id switches | fragmentations | recall | precision |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, label, r in rows:
        print(f"| {name} | {label} | {int(r['num_unique_objects'])} | {r['tracks']} | {100 * r['idf1']:.1f}% | "
              f"{100 * r['mota']:.1f}% | {int(r['num_switches'])} | {int(r['num_fragmentations'])} | "
              f"{100 * r['recall']:.1f}% | {100 * r['precision']:.1f}% |")


def _both(path, detector, gt, frames, fps=None):
    from wildpose.pipeline import detect_video
    from wildpose.track import TrackerConfig, track_people
    from wildpose.video import probe

    detections, timestamps, _ = detect_video(path, detector, fps=fps)
    size = probe(path, fps=fps).image_size if fps else probe(path).image_size
    config = TrackerConfig()
    out = []
    for label, c in (("online", dataclasses.replace(config, link_max_gap=0.0)), ("linked", config)):
        tracks = track_people(detections, timestamps, c, image_size=size)
        out.append((label, evaluate(gt, keypoint_boxes(tracks), frames or len(timestamps))))
    return out


def composite_truth(walker, first: int, last: int, mirrored: bool, hidden: tuple[int, int] | None = None):
    """Ground-truth boxes of the composites: the source's detection boxes of the walker (id 1) and, for the
    crossing, the same boxes mirrored (id 2); frames where the walker is hidden or was not detected are left out."""
    gt = {}
    width = walker.width
    for i, s in enumerate(range(first, last + 1)):
        b = walker.boxes[s]
        if not np.isfinite(b).all() or (hidden and hidden[0] <= s <= hidden[1]):
            continue
        ids, boxes = [1], [[b[0], b[1], b[2] - b[0], b[3] - b[1]]]
        if mirrored:
            ids.append(2)
            boxes.append([width - b[2], b[1], b[2] - b[0], b[3] - b[1]])
        gt[i] = (np.array(ids), np.array(boxes, float))
    return gt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--composites", action="store_true", help="the walker composites of tests/composites.py")
    parser.add_argument("--images", type=Path, help="a folder of frames (or a video) of a MOTChallenge sequence")
    parser.add_argument("--gt", type=Path, help="its gt.txt")
    parser.add_argument("--fps", type=float, help="the frame rate of a folder of frames")
    args = parser.parse_args()
    if not args.composites and not (args.images and args.gt):
        parser.error("give --composites, or --images and --gt")

    from wildpose.detect2d import create_detector
    from wildpose.track import TrackerConfig

    rows = []
    if args.images:
        from wildpose.pipeline import make_detector

        gt = read_mot_gt(args.gt)
        for label, r in _both(args.images, make_detector(), gt, None, fps=args.fps):
            rows.append((args.images.name, label, r))
    if args.composites:
        import composites

        # the composites' detector: one full-frame pass, as the tracking tests use
        detector = create_detector("movenet", score_threshold=TrackerConfig().low_score, refine=False, tiles=1)
        walker = composites.load_walker(VIDEOS / "walk_single.mp4", detector)
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            path, _ = composites.occluded(walker, tmp / "occluded.mp4")
            gt = composite_truth(walker, 60, 160, mirrored=False, hidden=(105, 120))
            rows += [("occluded", label, r) for label, r in _both(path, detector, gt, None)]
            path, _ = composites.crossing(walker, tmp / "crossing.mp4")
            gt = composite_truth(walker, 100, 200, mirrored=True)
            rows += [("crossing", label, r) for label, r in _both(path, detector, gt, None)]
    _print(rows)


if __name__ == "__main__":
    main()
