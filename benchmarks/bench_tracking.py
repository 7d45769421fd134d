"""Identities: tracks per person, id switches and fragmentations before and after offline tracklet linking,
and what linking costs next to detection.

    python benchmarks/bench_tracking.py              # the three walker composites and the crowd video
    python benchmarks/bench_tracking.py --no-crowd   # the composites only

The composites are made from walk_single.mp4 (tests/composites.py): the walker behind a painted box, crossing
his mirror image, leaving at the left edge and coming back. Their ground truth is known by construction: every
detection belongs to the copy whose box centre (from a detection pass over the source) is nearest; detections
where the two copies are less than half a body height apart are not counted (they could be either). The crowd
video has no annotation: its tracks are counted and measured.

Per ground-truth person, over their detections in time order:
- tracks: how many track ids they were given;
- switches: times their id changed to one another person had held before (an identity swap);
- fragmentations: times their id changed to a fresh id (the same person restarted).

Time: the tracker's and the linker's seconds per frame, as ratios to the detector's seconds per frame measured
in this same process (MoveNet, one full-frame pass); the colour descriptors are timed the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
VIDEOS = ROOT.parent / "shared" / "data" / "videos"


def _identity_counts(tracks, truth_of_row) -> dict:
    """tracks, switches and fragmentations per ground-truth person. ``truth_of_row(frames, x) -> (n,) int``
    gives each detected row's person (-1: not counted)."""
    detected = ~tracks.interpolated
    row_track = tracks.row_track()[detected]
    frames = tracks.frame_index[detected]
    k = tracks.keypoints_2d[detected]
    confident = k[..., 2] >= 0.1
    confident[~confident.any(1)] = True
    x = (k[..., 0] * confident).sum(1) / confident.sum(1)
    person = truth_of_row(frames, x)
    out = {}
    held_by: dict[int, int] = {}  # track -> the person who held it first
    order = np.argsort(frames, kind="stable")
    last: dict[int, int] = {}
    counts = {}
    for i in order:
        g, t = int(person[i]), int(tracks.track_ids[row_track[i]])
        if g < 0:
            continue
        c = counts.setdefault(g, {"tracks": set(), "switches": 0, "fragmentations": 0})
        if g in last and last[g] != t:
            if t in held_by and held_by[t] != g:
                c["switches"] += 1
            else:
                c["fragmentations"] += 1
        held_by.setdefault(t, g)
        c["tracks"].add(t)
        last[g] = t
    for g, c in sorted(counts.items()):
        out[g] = {"tracks": len(c["tracks"]), "switches": c["switches"], "fragmentations": c["fragmentations"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-crowd", action="store_true")
    args = parser.parse_args()

    import composites
    from wildpose.detect2d import create_detector
    from wildpose.link import colour_descriptors
    from wildpose.pipeline import detect_video
    from wildpose.track import TrackerConfig, track_people
    from wildpose.video import read_frames

    config = TrackerConfig()
    online = dataclasses.replace(config, link_max_gap=0.0)
    detector = create_detector("movenet", score_threshold=config.low_score, refine=False, tiles=1)
    walk = VIDEOS / "walk_single.mp4"
    walker = composites.load_walker(walk, detector)
    height = float(np.nanmedian(walker.boxes[:, 3] - walker.boxes[:, 1]))

    detect_s = colour_s = 0.0
    frames_timed = 0
    for frame in read_frames(walk):  # the baseline: detector and colours on the same frames
        t0 = time.perf_counter()
        people = detector(frame.image)
        t1 = time.perf_counter()
        colour_descriptors(frame.image, people.keypoints)
        t2 = time.perf_counter()
        detect_s += t1 - t0
        colour_s += t2 - t1
        frames_timed += 1
    detect_per_frame = detect_s / frames_timed
    print(f"detector {1000 * detect_per_frame:.1f} ms/frame (baseline); colour descriptors "
          f"{colour_s / detect_s:.3f} x detection")

    def timed_tracks(detections, timestamps):
        t0 = time.perf_counter()
        before = track_people(detections, timestamps, online)
        t1 = time.perf_counter()
        after = track_people(detections, timestamps, config)
        t2 = time.perf_counter()
        T = len(timestamps)
        return before, after, (t1 - t0) / T, max(0.0, (t2 - t1) - (t1 - t0)) / T

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        single = lambda frames, x: np.zeros(len(frames), int)  # noqa: E731  (one person in the clip)
        cases = []
        path, _ = composites.occluded(walker, tmp / "occluded.mp4")
        cases.append(("occluded 1 person", path, single))
        path, truth = composites.crossing(walker, tmp / "crossing.mp4")

        def by_position(frames, x, truth=truth):
            gt = truth[frames]
            person = np.argmin(np.abs(gt - x[:, None]), 1)
            return np.where(np.abs(gt[:, 0] - gt[:, 1]) > 0.5 * height, person, -1)

        cases.append(("crossing 2 people", path, by_position))
        path, _ = composites.reentry(walker, tmp / "reentry.mp4")
        cases.append(("re-entry 1 person", path, single))
        track_s = link_s = 0.0
        total_frames = 0
        for name, path, truth_of_row in cases:
            detections, timestamps, _ = detect_video(path, detector)
            before, after, tracking, linking = timed_tracks(detections, timestamps)
            track_s += tracking * len(timestamps)
            link_s += linking * len(timestamps)
            total_frames += len(timestamps)
            for label, tracks in (("online", before), ("linked", after)):
                counts = _identity_counts(tracks, truth_of_row)
                rows.append((name, label, len(tracks), sum(c["tracks"] for c in counts.values()) / len(counts),
                             sum(c["switches"] for c in counts.values()),
                             sum(c["fragmentations"] for c in counts.values())))
        print("\n| clip | tracking | tracks | tracks per person | id switches | fragmentations |")
        print("|---|---|---|---|---|---|")
        for name, label, n, per, sw, fm in rows:
            print(f"| {name} | {label} | {n} | {per:.1f} | {sw} | {fm} |")
        print(f"\ncomposites ({total_frames} frames): online tracker {track_s / total_frames / detect_per_frame:.4f} x "
              f"detection per frame, linking {link_s / total_frames / detect_per_frame:.4f} x")

    if not args.no_crowd:
        crowd = VIDEOS / "marathon_crowd.mkv"
        t0 = time.perf_counter()
        detections, timestamps, _ = detect_video(crowd, detector)
        crowd_detect = (time.perf_counter() - t0) / len(timestamps)
        before, after, tracking, linking = timed_tracks(detections, timestamps)
        print(f"\ncrowd ({len(timestamps)} frames, {detections.num_detections} detections; detection with colours "
              f"{1000 * crowd_detect:.1f} ms/frame)")
        print("| tracks | count | rows: mean | median | longest | detected rows |")
        print("|---|---|---|---|---|---|")
        for label, tracks in (("online", before), ("linked", after)):
            lengths = np.diff(tracks.offsets)
            print(f"| {label} | {len(tracks)} | {lengths.mean():.1f} | {np.median(lengths):.0f} | {lengths.max()} | "
                  f"{int((~tracks.interpolated).sum())} |")
        print(f"crowd: online tracker {tracking / crowd_detect:.4f} x detection per frame, linking "
              f"{linking / crowd_detect:.4f} x")


if __name__ == "__main__":
    main()
