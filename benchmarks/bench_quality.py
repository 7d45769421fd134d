"""3D quality on the real videos, which have no 3D ground truth: bone-length consistency, reprojection and jitter.

Runs ``wildpose.pipeline.process_video`` (shipped detector, tracker and lifter, default options) on each shared
video and prints one table of ``wildpose.quality.summarize``: overall values are averages over tracks weighted
by their frames. The same tracks are lifted again two other ways, as baselines measured in the same process:

- ``no refine``: ``refine=False`` (the network's raw poses, without ``wildpose.lift.refine``; reprojection
  favours the refined poses by construction, since they are pulled onto the keypoints);
- ``no flip``: ``flip=False`` (no test-time flip averaging);
- ``static``: every frame lifted on its own (a one-frame track, which the lifter's edge padding turns into a
  motionless 27-frame window): the same network without temporal context.

Then a plausibility table for the shipped variant, things a viewer would notice: spine tilt from the camera's
vertical, 3D height (ankle-knee-hip-pelvis-spine-thorax-neck-head chain), speed of the fitted root translation,
and the cosine between the way the 3D body faces (left-to-right hips and shoulders x up, horizontal) and the
way it moves (a left/right swap or a backwards pose shows as a negative cosine).

    python benchmarks/bench_quality.py [VIDEO ...] [--preset NAME] [--save DIR]
        (default: both videos in ../shared/data/videos; --preset: the 2D preset, default the CLI's; --save:
        each shipped result as DIR/<stem>.npz, for bench_skeleton_fit.py)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from wildpose import quality
from wildpose.lift import lift, load_lifter
from wildpose.detect2d.presets import DEFAULT_PRESET, PRESETS
from wildpose.formats.result import save_result
from wildpose.pipeline import RunOptions, lift_tracks, process_video
from wildpose.skeleton import H36M_NAMES
from wildpose.types import Result

VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos"
DEFAULT = [VIDEOS / "walk_single.mp4", VIDEOS / "marathon_crowd.mkv"]
J = {name: i for i, name in enumerate(H36M_NAMES)}


def relift(result: Result, poses: np.ndarray) -> Result:
    return Result.from_tracks(result.tracks(), poses, result.fps, result.image_size)


def static_poses(result: Result, model) -> np.ndarray:
    """Every row (person-frame) lifted alone (no temporal context)."""
    poses = np.full(result.poses_3d.shape, np.nan, np.float32)
    size = tuple(int(v) for v in result.image_size)
    for i in range(result.num_rows):
        poses[i] = lift(result.keypoints_2d[i:i + 1], size, result.fps, model=model)[0]
    return poses


def plausibility(result: Result, min_frames: int = 20) -> dict:
    """Frame-weighted medians of posture and motion over tracks with at least ``min_frames`` frames."""
    rep = quality.reprojection_error(result)
    rows = []
    for p in range(len(result.track_ids)):
        m = result.track(p)
        if m.stop - m.start < min_frames:
            continue
        X = result.poses_3d[m].astype(np.float64)
        spine = X[:, J["thorax"]] - X[:, J["pelvis"]]
        up = spine / np.linalg.norm(spine, axis=1, keepdims=True)
        tilt = np.degrees(np.arccos(np.clip(-up[:, 1], -1, 1)))
        chain = ("right_ankle", "right_knee", "right_hip", "pelvis", "spine", "thorax", "neck", "head")
        height = sum(np.linalg.norm(X[:, J[a]] - X[:, J[b]], axis=1) for a, b in zip(chain, chain[1:]))
        left = X[:, J["left_hip"]] - X[:, J["right_hip"]] + X[:, J["left_shoulder"]] - X[:, J["right_shoulder"]]
        facing = np.cross(left, up)
        facing[:, 1] = 0.0
        facing /= np.maximum(np.linalg.norm(facing, axis=1, keepdims=True), 1e-9)
        t, ts = rep.translation[m], result.timestamps[result.frame_index[m]]
        k = max(1, int(round(0.5 * result.fps)))  # velocity over 0.5 s: the fitted root is noisy frame to frame
        if len(t) <= k:
            continue
        v = (t[k:] - t[:-k]) / (ts[k:] - ts[:-k])[:, None]
        v[:, 1] = 0.0
        speed = np.linalg.norm(v, axis=1)
        f = facing[k // 2:k // 2 + len(v)]
        moving = speed > 0.5
        cos = float(np.mean((f[moving] * v[moving]).sum(1) / speed[moving])) if moving.any() else np.nan
        rows.append((m.stop - m.start, np.median(tilt), np.median(height), np.median(speed), cos, moving.mean(),
                     np.median(t[:, 2])))
    if not rows:
        return {}
    a = np.array(rows, np.float64)
    w = a[:, 0]

    def wmean(col):
        ok = np.isfinite(a[:, col])
        return float((a[ok, col] * w[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")

    moving_tracks = a[:, 5] > 0.5
    # rows whose world pelvis is not above the lower ankle (y up): a lifter's guess at legs it cannot see shows
    # here (a person cut by the frame's edge)
    y = result.poses_world[..., 1]
    not_upright = y[:, 0] <= np.minimum(y[:, J["right_ankle"]], y[:, J["left_ankle"]])
    return {"tracks": len(a), "not_upright_rows": int(not_upright.sum()),
            "not_upright_tracks": int(np.unique(result.row_track()[not_upright]).size),
            "tilt_deg": wmean(1), "worst_tilt_deg": float(a[:, 1].max()),
            "height_m": wmean(2), "speed_mps": wmean(3), "facing_cos": wmean(4),
            "facing_backwards": int(((a[:, 4] < 0) & moving_tracks).sum()), "moving_tracks": int(moving_tracks.sum()),
            "depth_m": wmean(6)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--model", help="a lifter .safetensors to measure instead of the shipped one")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET, help="the 2D stage's preset")
    parser.add_argument("--save", type=Path, help="write each shipped result to DIR/<stem>.npz")
    args = parser.parse_args(argv)
    missing = [v for v in args.videos if not v.exists()]
    if missing:
        print(f"skipped: {', '.join(map(str, missing))} absent (the shared data is not next to this checkout)")
        return 0
    model = load_lifter(args.model)
    header = (f"{'video':<20} {'variant':<9} {'tracks':>6} {'frames':>6} {'CV med':>7} {'CV worst':>8} "
              f"{'<=5% med':>8} {'<=5% all':>8} {'reproj px':>9} {'% height':>8} {'3D m/s2':>8} "
              f"{'2D px/s2':>9} {'3D/2D rel':>9} {'seconds':>7}")
    lines, posture = [], []
    for video in args.videos:
        start = time.perf_counter()
        result, info = process_video(video, RunOptions(preset=args.preset), model=model)
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
            save_result(result, args.save / f"{video.stem}.npz")
        seconds = time.perf_counter() - start
        tracks = result.tracks()
        variants = [("shipped", result, seconds)]
        start = time.perf_counter()
        raw = lift_tracks(tracks, info.image_size, info.fps, model=model, refine=False)
        variants.append(("no refine", relift(result, raw), time.perf_counter() - start))
        start = time.perf_counter()
        no_flip = lift_tracks(tracks, info.image_size, info.fps, model=model, flip=False)
        variants.append(("no flip", relift(result, no_flip), time.perf_counter() - start))
        start = time.perf_counter()
        variants.append(("static", relift(result, static_poses(result, model)), time.perf_counter() - start))
        for name, res, secs in variants:
            s = quality.summarize(res)
            o, t = s["overall"], s["tracks"]
            valid = np.isfinite(t["bone_cv_worst"])
            all_ok = float((t["bone_cv_worst"][valid] <= quality.BONE_CV_TARGET).mean()) if valid.any() else np.nan
            lines.append(f"{video.name:<20} {name:<9} {o['tracks']:>6} {o['frames']:>6} "
                         f"{100 * o['bone_cv_median']:>6.1f}% {100 * o['bone_cv_worst']:>7.1f}% "
                         f"{100 * o['share_meeting_bone_cv_target']:>7.0f}% {100 * all_ok:>7.0f}% "
                         f"{o['reprojection_px']:>9.2f} {100 * o['reprojection_rel']:>7.2f}% "
                         f"{o['jitter_3d']:>8.2f} {o['jitter_2d']:>9.0f} "
                         f"{o['jitter_3d_rel'] / o['jitter_2d_rel']:>9.3f} {secs:>7.2f}")
            if name == "shipped":
                worst = {}
                for bone, frames in zip(t["bone_cv_worst_bone"], t["frames"]):
                    worst[bone] = worst.get(bone, 0) + int(frames)
                posture.append((video.name, plausibility(res), max(worst, key=worst.get) if worst else ""))
    print("Bone-length CV (std/mean per bone over a track): median over the 16 bones and the worst bone;")
    print("'<=5% med' / '<=5% all': share of tracks whose median bone / every bone meets the 5% target.")
    print("Reprojection: median over frames of the score-weighted mean pixel error after fitting the root")
    print("translation (default 60-degree focal); % of the 2D keypoint box height. Jitter: mean joint")
    print("acceleration; '3D/2D rel': 3D over 2D jitter, both root-relative and in body heights/s^2.")
    print("'seconds': process_video for 'shipped' (decode+detect+track+lift), lifting only for the others.")
    print(header)
    print("\n".join(lines))
    print()
    print(f"{'video':<20} {'tracks>=20f':>11} {'tilt deg':>8} {'worst':>6} {'height m':>8} {'speed m/s':>9} "
          f"{'face.move cos':>13} {'backwards':>9} {'depth m':>7} {'pelvis<=ankle rows (tracks)':>27}  "
          "most frames' worst bone")
    for name, d, bone in posture:
        if not d:
            print(f"{name:<20} (no track of 20 frames)")
            continue
        print(f"{name:<20} {d['tracks']:>11} {d['tilt_deg']:>8.1f} {d['worst_tilt_deg']:>6.1f} "
              f"{d['height_m']:>8.2f} {d['speed_mps']:>9.2f} {d['facing_cos']:>13.2f} "
              f"{d['facing_backwards']:>4}/{d['moving_tracks']:<4} {d['depth_m']:>7.2f} "
              f"{d['not_upright_rows']:>20} ({d['not_upright_tracks']:>3})  {bone}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
