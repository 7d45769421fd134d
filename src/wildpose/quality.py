"""Quality of 3D poses on real videos, where there is no 3D ground truth (numpy only).

Three checks that need only what ``wildpose run`` writes (a :class:`wildpose.types.Result`):

- **bone-length consistency**: a person's bones do not change length, so the coefficient of variation
  (std / mean over time) of each of the 16 H36M bones measures how much the lifter's skeleton breathes;
- **reprojection**: the 3D pose is root-relative, so fit per frame the camera-space translation (and only that)
  that best projects it onto the 2D keypoints it was lifted from, with a pinhole camera of the lifter's focal
  length, and measure what is left (pixels, and as a fraction of the person's 2D height);
- **jitter**: mean acceleration magnitude of the joints over consecutive frames (m/s^2 for 3D, px/s^2 for 2D).

``summarize(result)`` gives all of them per track and over the video (weighted by each track's frames).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np

from .lift.normalize import focal_from_fov
from .skeleton import COCO_NAMES, H36M_NAMES, H36M_PARENTS
from .types import Result

__all__ = ["BONE_NAMES", "BONE_CV_TARGET", "H36M_TO_COCO", "bone_lengths", "bone_length_cv", "bone_cv_summary",
           "fit_translation", "project", "Reprojection", "reprojection_error", "jitter", "keypoint_height",
           "summarize"]

# the 16 bones, one per non-root H36M joint, named after their child joint (bone i ends at joint i + 1)
BONE_CHILDREN = np.arange(1, 17)
BONE_PARENTS = H36M_PARENTS[1:]
BONE_NAMES = tuple(f"{H36M_NAMES[p]}-{H36M_NAMES[c]}" for p, c in zip(BONE_PARENTS, BONE_CHILDREN))
BONE_CV_TARGET = 0.05  # the target: bone lengths vary by at most 5% over a track

# joints that are the same anatomical point in both layouts: hips, knees, ankles, shoulders, elbows, wrists
# (the face points and the H36M spine/thorax/neck/head have no exact COCO counterpart)
H36M_TO_COCO = tuple((H36M_NAMES.index(name), COCO_NAMES.index(name)) for name in (
    "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow", "right_wrist"))
_H36M_IDX = np.array([h for h, _ in H36M_TO_COCO])
_COCO_IDX = np.array([c for _, c in H36M_TO_COCO])

_MIN_DEPTH = 1e-3  # metres: the camera-space depth a fitted joint may not go below (in front of the camera)


def _check_poses(poses: np.ndarray, present: np.ndarray, name: str = "poses_3d") -> tuple[np.ndarray, np.ndarray]:
    poses = np.asarray(poses, np.float64)
    present = np.asarray(present, bool)
    if poses.ndim != 4 or poses.shape[-1] not in (2, 3):
        raise ValueError(f"{name}: expected shape (P, T, J, 2 or 3), got {poses.shape}")
    if present.shape != poses.shape[:2]:
        raise ValueError(f"present: expected shape {poses.shape[:2]}, got {present.shape}")
    return poses, present


# ---------------------------------------------------------------------------------------------- bone lengths

def bone_lengths(poses_3d: np.ndarray) -> np.ndarray:
    """Length of each H36M bone: (..., 17, 3) -> (..., 16), in the poses' units (metres)."""
    poses_3d = np.asarray(poses_3d, np.float64)
    if poses_3d.shape[-2:] != (17, 3):
        raise ValueError(f"poses_3d: expected shape (..., 17, 3), got {poses_3d.shape}")
    return np.linalg.norm(poses_3d[..., BONE_CHILDREN, :] - poses_3d[..., BONE_PARENTS, :], axis=-1)


def bone_length_cv(poses_3d: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Coefficient of variation (std / mean, population std) of each bone's length over a track's frames.

    Parameters
    ----------
    poses_3d : (P, T, 17, 3) H36M joints, metres (any units: the ratio has none).
    present : (P, T) bool, the frames to use for each track (``Result.present()``, a dense view).

    Returns
    -------
    (P, 16) float64, unitless (0.05 = 5%), bone order ``BONE_NAMES``. NaN for a track with fewer than two
    present frames.
    """
    poses_3d, present = _check_poses(poses_3d, present)
    lengths = bone_lengths(poses_3d)  # (P, T, 16)
    lengths = np.where(present[..., None], lengths, np.nan)
    count = present.sum(1)[:, None]  # (P, 1)
    safe = np.where(present[..., None], lengths, 0.0)
    mean = safe.sum(1) / np.maximum(count, 1)
    var = (np.where(present[..., None], lengths - mean[:, None], 0.0) ** 2).sum(1) / np.maximum(count, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cv = np.sqrt(var) / mean
    return np.where(count >= 2, cv, np.nan)


def bone_cv_summary(cv: np.ndarray) -> dict:
    """Per-track summary of ``bone_length_cv``'s (P, 16) output.

    Returns a dict of (P,) arrays: ``median`` (over the 16 bones), ``worst`` (the largest CV), ``worst_bone``
    (its index into ``BONE_NAMES``, -1 where the track has no CV) and ``meets_target`` (median <= 5%).
    """
    cv = np.asarray(cv, np.float64)
    if cv.ndim != 2 or cv.shape[1] != len(BONE_NAMES):
        raise ValueError(f"cv: expected shape (P, {len(BONE_NAMES)}), got {cv.shape}")
    valid = ~np.isnan(cv).all(1)
    median = np.full(len(cv), np.nan)
    worst = np.full(len(cv), np.nan)
    worst_bone = np.full(len(cv), -1, np.int64)
    if valid.any():
        median[valid] = np.nanmedian(cv[valid], axis=1)
        worst[valid] = np.nanmax(cv[valid], axis=1)
        worst_bone[valid] = np.nanargmax(cv[valid], axis=1)
    return {"median": median, "worst": worst, "worst_bone": worst_bone,
            "meets_target": valid & (np.nan_to_num(median, nan=np.inf) <= BONE_CV_TARGET)}


# ---------------------------------------------------------------------------------------------- reprojection

def project(points_3d: np.ndarray, focal_length: float, principal_point: tuple[float, float]) -> np.ndarray:
    """Pinhole projection of camera-space points (..., 3) metres -> pixels (..., 2) (x right, y down, z forward)."""
    points_3d = np.asarray(points_3d, np.float64)
    c = np.asarray(principal_point, np.float64)
    return focal_length * points_3d[..., :2] / points_3d[..., 2:3] + c


def fit_translation(poses_3d: np.ndarray, keypoints_2d: np.ndarray, weights: np.ndarray, focal_length: float,
                    principal_point: tuple[float, float], iterations: int = 3) -> np.ndarray:
    """Per pose, the camera-space translation that best projects the 3D joints onto the 2D keypoints.

    First the linear solve (each joint gives two equations linear in the translation, ``f (X + tx) -
    (u - cx)(Z + tz) = 0`` and the same in y: residuals in pixels times depth), then Gauss-Newton steps on the
    weighted squared pixel error itself. Vectorised over poses: one 3x3 solve per pose and step.

    Parameters
    ----------
    poses_3d : (N, J, 3) root-relative joints, metres, camera axes.
    keypoints_2d : (N, J, 2) the matching image points, pixels.
    weights : (N, J) >= 0 (keypoint scores); a joint with weight 0 or a NaN coordinate is ignored.
    focal_length : pixels.
    principal_point : (cx, cy) pixels.
    iterations : Gauss-Newton steps after the linear solve.

    Returns
    -------
    (N, 3) float64 translation in metres; NaN for a pose with fewer than two usable joints.
    """
    X = np.asarray(poses_3d, np.float64)
    uv = np.asarray(keypoints_2d, np.float64)[..., :2]
    w = np.asarray(weights, np.float64)
    if X.ndim != 3 or X.shape[-1] != 3 or uv.shape != X.shape[:-1] + (2,) or w.shape != X.shape[:-1]:
        raise ValueError(f"poses_3d (N, J, 3), keypoints_2d (N, J, 2), weights (N, J): got {X.shape}, "
                         f"{uv.shape}, {w.shape}")
    usable = (w > 0) & np.isfinite(uv).all(-1) & np.isfinite(X).all(-1) & np.isfinite(w)
    w = np.where(usable, w, 0.0)
    X = np.where(usable[..., None], X, 0.0)
    d = np.where(usable[..., None], uv - np.asarray(principal_point, np.float64), 0.0)  # centred pixels
    f = float(focal_length)
    enough = usable.sum(-1) >= 2  # 2 joints x 2 equations >= 3 unknowns
    # linear solve: rows [f, 0, -dx] t = dx Z - f X and [0, f, -dy] t = dy Z - f Y, weighted least squares
    N, J = w.shape
    A = np.zeros((N, J, 2, 3))
    A[..., 0, 0] = f
    A[..., 1, 1] = f
    A[..., :, 2] = -d
    b = d * X[..., 2:3] - f * X[..., :2]  # (N, J, 2)
    t = _weighted_solve(A, b, w, enough)
    for _ in range(iterations):
        Xc = X + t[:, None, :]
        z = np.maximum(Xc[..., 2], _MIN_DEPTH)
        r = f * Xc[..., :2] / z[..., None] - d  # (N, J, 2) pixel residuals
        Jm = np.zeros((N, J, 2, 3))
        Jm[..., 0, 0] = f / z
        Jm[..., 1, 1] = f / z
        Jm[..., :, 2] = -f * Xc[..., :2] / (z ** 2)[..., None]
        step = _weighted_solve(Jm, -r, w, enough)
        t = t + step
        # a translation that puts a joint behind the camera cannot be right; keep the person in front
        t[:, 2] = np.maximum(t[:, 2], _MIN_DEPTH - np.where(usable, X[..., 2], np.inf).min(-1))
    return np.where(enough[:, None], t, np.nan)


def _weighted_solve(A: np.ndarray, b: np.ndarray, w: np.ndarray, enough: np.ndarray) -> np.ndarray:
    """Least squares of sum_j w_j |A_j t - b_j|^2 per pose: A (N, J, 2, 3), b (N, J, 2), w (N, J) -> (N, 3)."""
    AtA = np.einsum("nj,njki,njkl->nil", w, A, A)
    Atb = np.einsum("nj,njki,njk->ni", w, A, b)
    # poses without enough joints get the identity so that the batched solve stays defined; masked later
    AtA[~enough] = np.eye(3)
    Atb[~enough] = 0.0
    return np.linalg.solve(AtA, Atb[..., None])[..., 0]


def keypoint_height(keypoints_2d: np.ndarray) -> np.ndarray:
    """Height of the box around a person's 2D keypoints: (..., 17, 2 or 3) pixels -> (...,) pixels (NaN: none)."""
    y = np.asarray(keypoints_2d, np.float64)[..., 1]
    with np.errstate(invalid="ignore"), _all_nan_ok():
        return np.nanmax(y, -1) - np.nanmin(y, -1)


@contextlib.contextmanager
def _all_nan_ok():
    """Silence numpy's empty/all-NaN reductions: absent frames and tracks are expected to be all NaN."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="All-NaN slice", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        yield


@dataclass(frozen=True)
class Reprojection:
    """What ``reprojection_error`` found, per row of the result (NaN where a pose could not be fitted).

    pixels: (N,) score-weighted mean distance (px) between the projected 3D joints and their 2D keypoints
    relative: (N,) the same divided by the person's 2D height (``keypoint_height``), unitless
    translation: (N, 3) the fitted root position in camera space, metres
    focal_length: the focal length used, pixels
    track_lengths: (P,) rows of each track (the result's layout), for the per-track medians
    """

    pixels: np.ndarray
    relative: np.ndarray
    translation: np.ndarray
    focal_length: float
    track_lengths: np.ndarray

    def _per_track(self, values: np.ndarray) -> np.ndarray:
        edges = np.concatenate([[0], np.cumsum(self.track_lengths)])
        with _all_nan_ok():
            return np.array([np.nanmedian(values[a:b]) if b > a else np.nan for a, b in zip(edges[:-1], edges[1:])])

    @property
    def median_pixels(self) -> np.ndarray:
        """(P,) median over each track's frames, pixels."""
        return self._per_track(self.pixels)

    @property
    def median_relative(self) -> np.ndarray:
        """(P,) median over each track's frames, fraction of the person's height."""
        return self._per_track(self.relative)


def reprojection_error(result: Result, focal_length: float | None = None, iterations: int = 3) -> Reprojection:
    """How well each 3D pose, placed by its best translation, reprojects onto the 2D keypoints.

    Uses the 12 joints in ``H36M_TO_COCO`` weighted by keypoint score, a pinhole camera with the principal point
    at the image centre and ``focal_length`` (pixels; default ``focal_from_fov(image_size)``, what the lifter
    assumes when it is not told). Only the translation is fitted: rotation or scale errors of the pose stay in
    the error.

    Returns
    -------
    Reprojection with (N,) pixel and relative errors and (N, 3) translations, a row per row of ``result``.
    """
    w_img, h_img = (int(v) for v in result.image_size)
    f = float(focal_length) if focal_length is not None else focal_from_fov((w_img, h_img))
    c = (w_img / 2.0, h_img / 2.0)
    N = result.num_rows
    pixels = np.full(N, np.nan)
    translation = np.full((N, 3), np.nan)
    if N:
        X = result.poses_3d[:, _H36M_IDX].astype(np.float64)  # (N, 12, 3)
        kp = result.keypoints_2d[:, _COCO_IDX].astype(np.float64)  # (N, 12, 3)
        weights = np.nan_to_num(kp[..., 2], nan=0.0)
        t = fit_translation(X, kp[..., :2], weights, f, c, iterations=iterations)
        err = np.linalg.norm(project(X + t[:, None], f, c) - kp[..., :2], axis=-1)  # (N, 12)
        usable = np.isfinite(err) & (weights > 0)
        wsum = np.where(usable, weights, 0.0).sum(-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_err = np.where(usable, err * weights, 0.0).sum(-1) / wsum
        pixels = np.where(np.isfinite(t).all(-1), mean_err, np.nan)
        translation = t
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = pixels / np.maximum(keypoint_height(result.keypoints_2d), 1.0)
    return Reprojection(pixels, relative, translation, f, result.track_lengths.copy())


# ---------------------------------------------------------------------------------------------------- jitter

def jitter(poses: np.ndarray, present: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Mean acceleration magnitude of the joints of each track.

    The acceleration at frame t is the second difference over the true time steps,
    ``2 ((x[t+1] - x[t]) / dt1 - (x[t] - x[t-1]) / dt0) / (dt0 + dt1)``, taken only where frames t-1, t and t+1
    are all present; its norm is averaged over joints and frames.

    Parameters
    ----------
    poses : (P, T, J, D) joints: 3D poses (metres, D = 3) or 2D keypoints (pixels; pass ``[..., :2]``).
    present : (P, T) bool.
    timestamps : (T,) seconds, increasing.

    Returns
    -------
    (P,) float64 in units/s^2 (m/s^2 or px/s^2); NaN for a track without three consecutive present frames.
    """
    poses, present = _check_poses(poses, present, "poses")
    timestamps = np.asarray(timestamps, np.float64)
    if timestamps.shape != present.shape[1:]:
        raise ValueError(f"timestamps: expected shape ({present.shape[1]},), got {timestamps.shape}")
    P, T = present.shape
    if T < 3:
        return np.full(P, np.nan)
    dt = np.diff(timestamps)
    if not (dt > 0).all():
        raise ValueError("timestamps: must be strictly increasing")
    dt0, dt1 = dt[:-1, None, None], dt[1:, None, None]
    acc = 2.0 * ((poses[:, 2:] - poses[:, 1:-1]) / dt1 - (poses[:, 1:-1] - poses[:, :-2]) / dt0) / (dt0 + dt1)
    mag = np.linalg.norm(acc, axis=-1)  # (P, T-2, J)
    triple = present[:, :-2] & present[:, 1:-1] & present[:, 2:]
    ok = triple[..., None] & np.isfinite(mag)
    count = ok.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(ok, mag, 0.0).sum((1, 2)) / count, np.nan)


# ----------------------------------------------------------------------------------------------- summarize

def _weighted_mean(values: np.ndarray, frames: np.ndarray) -> float:
    ok = np.isfinite(values) & (frames > 0)
    return float((values[ok] * frames[ok]).sum() / frames[ok].sum()) if ok.any() else float("nan")


def summarize(result: Result, focal_length: float | None = None) -> dict:
    """All quality measures of a result, per track and over the video.

    Returns
    -------
    dict with ``"tracks"``: per-track (P,) arrays (``track_ids``, ``frames`` present, ``bone_cv_median``,
    ``bone_cv_worst``, ``bone_cv_worst_bone`` (names), ``meets_bone_cv_target``, ``reprojection_px``,
    ``reprojection_rel`` (medians over frames), ``jitter_3d`` m/s^2, ``jitter_2d`` px/s^2,
    ``jitter_3d_rel`` and ``jitter_2d_rel`` (root-relative joints over the person's height, heights/s^2: the
    same units for 2D and 3D, so their ratio says whether the lifter adds or removes jitter), plus
    ``bone_cv`` (P, 16); and ``"overall"``: the same scalars averaged over tracks weighted by their frames
    (``share_meeting_bone_cv_target`` is the share of tracks), ``tracks`` and ``frames``.
    """
    P = len(result)
    frames = result.track_lengths
    cv = np.full((P, len(BONE_NAMES)), np.nan)
    jit3, jit2, jit2_rel = np.full(P, np.nan), np.full(P, np.nan), np.full(P, np.nan)
    height_2d, height_3d = np.full(P, np.nan), np.full(P, np.nan)
    rep = reprojection_error(result, focal_length)
    for p in range(P):  # one track at a time, over its own span: never tracks x frames
        rows = result.track(p)
        if rows.stop == rows.start:
            continue
        idx = result.frame_index[rows]
        span = idx - idx[0]
        present = np.zeros((1, span[-1] + 1), bool)
        present[0, span] = True
        kp = np.full((1, present.shape[1], 17, 2), np.nan)
        kp[0, span] = result.keypoints_2d[rows][..., :2]
        poses = np.full((1, present.shape[1], 17, 3), np.nan)
        poses[0, span] = result.poses_3d[rows]
        times = result.timestamps[idx[0]:idx[-1] + 1]
        cv[p] = bone_length_cv(poses, present)[0]
        jit3[p] = jitter(poses, present, times)[0]
        jit2[p] = jitter(kp, present, times)[0]
        # body-height-relative jitter of root-relative joints, comparable between 2D and 3D
        hip_mid = kp[..., [COCO_NAMES.index("left_hip"), COCO_NAMES.index("right_hip")], :].mean(-2, keepdims=True)
        with _all_nan_ok():
            height_2d[p] = np.nanmedian(keypoint_height(kp[0, span]))
            height_3d[p] = np.nanmedian(keypoint_height(poses[0, span]))
        jit2_rel[p] = jitter(kp - hip_mid, present, times)[0]
    cv_sum = bone_cv_summary(cv)
    with np.errstate(invalid="ignore", divide="ignore"):
        jit2_rel = jit2_rel / height_2d
        jit3_rel = jit3 / height_3d
    tracks = {
        "track_ids": result.track_ids.copy(), "frames": frames, "bone_cv": cv,
        "bone_cv_median": cv_sum["median"], "bone_cv_worst": cv_sum["worst"],
        "bone_cv_worst_bone": [BONE_NAMES[i] if i >= 0 else "" for i in cv_sum["worst_bone"]],
        "meets_bone_cv_target": cv_sum["meets_target"],
        "reprojection_px": rep.median_pixels, "reprojection_rel": rep.median_relative,
        "jitter_3d": jit3, "jitter_2d": jit2, "jitter_3d_rel": jit3_rel, "jitter_2d_rel": jit2_rel,
        "height_3d": height_3d, "height_2d": height_2d,
    }
    overall = {key: _weighted_mean(tracks[key], frames) for key in (
        "bone_cv_median", "bone_cv_worst", "reprojection_px", "reprojection_rel", "jitter_3d", "jitter_2d",
        "jitter_3d_rel", "jitter_2d_rel", "height_3d", "height_2d")}
    valid = np.isfinite(cv_sum["median"])
    overall["share_meeting_bone_cv_target"] = (float(cv_sum["meets_target"][valid].mean()) if valid.any()
                                               else float("nan"))
    overall["tracks"] = int(len(frames))
    overall["frames"] = int(frames.sum())
    overall["focal_length"] = rep.focal_length
    return {"tracks": tracks, "overall": overall}
