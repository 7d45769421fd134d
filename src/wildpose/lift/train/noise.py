"""Calibrate the training 2D noise from a real detector's tracks (MoveNet + our tracker on real videos).

For every track and keypoint, the high-pass residual ``r_t = x_t - (x_{t-1} + x_{t+1}) / 2`` (per coordinate,
only where frames t-1, t, t+1 were all detected, not interpolated) is divided by the person's pixel height.
For white noise of sd s, r has sd s * sqrt(1.5); smooth motion contributes only its acceleration, which is
small against detector jitter at 25-30 fps for all but the fastest wrists. From r:

- jitter sd per joint: a robust sd (1.4826 x median |r|) / sqrt(1.5), so outliers do not inflate it;
- outliers: joint-frames whose residual is a local peak in time and larger than ``k`` robust sds; their size
  (the residual's median norm) gives the outlier sd;
- low-score joints: the fraction of detected joint-frames whose keypoint score is below ``low_score``, and
  the jitter sd of those joint-frames (MoveNet regresses every keypoint, so a "missing" joint is a guess).

``python -m wildpose.lift.train.noise`` runs MoveNet and the tracker on the shared videos and prints the numbers
(docs/MODEL.md, "2D noise model"); ``--cache DIR`` keeps the tracks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# measured by ``python -m wildpose.lift.train.noise`` on walk_single.mp4 + marathon_crowd.mkv (22 tracks,
# 1,377 usable frames; docs/MODEL.md): the augmentation keys of wildpose.lift.train.loop.add_noise_2d at
# scale 1, used by the held-out evaluation's "movenet2d" condition and configs/lifter_calib.json
MOVENET_NOISE = {
    "joint_sd": [0.0074, 0.0074, 0.0071, 0.0078, 0.0076, 0.0099, 0.0098, 0.0114, 0.0103, 0.0099, 0.0107,
                 0.0090, 0.0092, 0.0090, 0.0093, 0.0112, 0.0101],
    "lowscore_prob": [0.045, 0.071, 0.040, 0.038, 0.035, 0.040, 0.033, 0.235, 0.181, 0.399, 0.322, 0.100,
                      0.100, 0.145, 0.132, 0.268, 0.293],
    "lowscore_sd": 0.024, "outlier_prob": 0.05, "outlier_sd": 0.08, "noise_scale": [1.0, 1.0],
}
SQRT_1_5 = float(np.sqrt(1.5))
MAD_TO_SD = 1.4826


def track_residuals(keypoints: np.ndarray, interpolated: np.ndarray, min_frames: int = 15,
                    min_height_px: float = 30.0) -> dict[str, np.ndarray]:
    """High-pass residuals of tracks, as fractions of each track's pixel height.

    Parameters
    ----------
    keypoints : (P, T, 17, 3) pixels x, y and score; NaN where the track is absent
    interpolated : (P, T) bool, frames the tracker filled in
    min_frames : tracks with fewer usable (detected) frames are skipped
    min_height_px : tracks whose median height is below this are skipped (their jitter is quantisation)

    Returns
    -------
    dict with ``residual`` (N, 17, 2) float64 (height fractions), ``score`` (N, 17) the keypoint scores at
    those frames, ``height_px`` (N,) and ``track`` (N,) the track index of each usable frame.
    """
    res, scores, heights, tracks = [], [], [], []
    for p in range(keypoints.shape[0]):
        k = keypoints[p].astype(np.float64)
        detected = np.isfinite(k).all(axis=(1, 2)) & ~interpolated[p]
        usable = detected[1:-1] & detected[:-2] & detected[2:]
        if usable.sum() < min_frames:
            continue
        xy, sc = k[..., :2], k[..., 2]
        # the person's height: span of the confidently seen keypoints (head to ankles), median over the track
        conf = np.where(sc >= 0.3, xy[..., 1], np.nan)
        with np.errstate(all="ignore"):
            span = np.nanmax(conf, axis=1) - np.nanmin(conf, axis=1)
        h = float(np.nanmedian(span[detected])) if np.isfinite(span[detected]).any() else np.nan
        if not np.isfinite(h) or h < min_height_px:
            continue
        r = xy[1:-1] - 0.5 * (xy[:-2] + xy[2:])
        idx = np.flatnonzero(usable)
        res.append(r[idx] / h)
        scores.append(sc[1:-1][idx])
        heights.append(np.full(len(idx), h))
        tracks.append(np.full(len(idx), p))
    if not res:
        return {"residual": np.zeros((0, 17, 2)), "score": np.zeros((0, 17)), "height_px": np.zeros(0),
                "track": np.zeros(0, int)}
    return {"residual": np.concatenate(res), "score": np.concatenate(scores),
            "height_px": np.concatenate(heights), "track": np.concatenate(tracks)}


def noise_stats(residual: np.ndarray, score: np.ndarray, k: float = 5.0, low_score: float = 0.3) -> dict:
    """Per-joint jitter sd, outlier rate and size, low-score rate and sd from residuals (see module doc).

    residual (N, 17, 2) height fractions (consecutive rows of one track are consecutive frames), score (N, 17).
    Returns fractions of the person's height (sds per coordinate) and rates per joint-frame.
    """
    a = np.abs(residual)
    good = score >= low_score
    sd = np.array([MAD_TO_SD * np.median(a[good[:, j], j]) if good[:, j].any() else np.nan
                   for j in range(residual.shape[1])]) / SQRT_1_5
    norm = np.linalg.norm(residual, axis=-1)
    z = a.max(axis=-1) / (sd[None] * SQRT_1_5)
    # an outlier at t also shows, halved, in the residuals at t-1 and t+1: count only the peak
    peak = np.ones_like(z, bool)
    peak[1:] &= z[1:] >= z[:-1]
    peak[:-1] &= z[:-1] >= z[1:]
    out = (z > k) & peak
    low = ~good
    low_sd = MAD_TO_SD * np.median(a[low]) / SQRT_1_5 if low.any() else float("nan")
    return {
        "frames": int(residual.shape[0]),
        "joint_sd": [round(float(v), 5) for v in sd],
        "median_joint_sd": float(np.median(sd)),
        "outlier_prob": float(out.mean()),
        "outlier_sd": float(np.median(norm[out]) / np.sqrt(2.0)) if out.any() else float("nan"),
        "lowscore_prob": float(low.mean()),
        "lowscore_sd": float(low_sd),
        "lowscore_prob_per_joint": [round(float(v), 4) for v in low.mean(axis=0)],
    }


def detect_tracks(video: str | os.PathLike, cache: Path | None = None) -> dict[str, np.ndarray]:
    """MoveNet + tracker on a video (the pipeline's defaults): keypoints (P, T, 17, 3), interpolated (P, T)."""
    if cache is not None:
        f = cache / (Path(video).stem + ".npz")
        if f.is_file():
            with np.load(f) as z:
                return {"keypoints": z["keypoints"], "interpolated": z["interpolated"]}
    from wildpose.pipeline import detect_video, track_video

    people, ts, _ = detect_video(video)
    dense = track_video(people, ts, path=video).to_dense()  # the shared clips are short: (P, T) is small
    out = {"keypoints": dense["keypoints_2d"], "interpolated": dense["interpolated"]}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(cache / (Path(video).stem + ".npz"), **out)
    return out


def main(argv=None) -> int:
    root = Path(__file__).resolve().parents[4]
    videos = root.parent / "shared" / "data" / "videos"
    ap = argparse.ArgumentParser(prog="python -m wildpose.lift.train.noise", description=__doc__)
    ap.add_argument("videos", nargs="*", default=[str(videos / "walk_single.mp4"),
                                                  str(videos / "marathon_crowd.mkv")])
    ap.add_argument("--cache", default=str(root / "runs" / "noise"))
    ap.add_argument("-k", type=float, default=5.0, help="outlier threshold in robust sds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report, allres, allsc = {}, [], []
    for v in args.videos:
        t = detect_tracks(v, Path(args.cache) if args.cache else None)
        r = track_residuals(t["keypoints"], t["interpolated"])
        report[Path(v).name] = {"tracks_used": int(len(np.unique(r["track"]))),
                                "median_height_px": float(np.median(r["height_px"])) if len(r["track"]) else None,
                                **noise_stats(r["residual"], r["score"], args.k)}
        allres.append(r["residual"])
        allsc.append(r["score"])
    report["all"] = noise_stats(np.concatenate(allres), np.concatenate(allsc), args.k)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
