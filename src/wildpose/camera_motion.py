"""How a panning, tilting or rolling camera turns over a video, from the background's motion.

Real videos follow people: the camera turns, so a person's camera-space trajectory is in a different camera
orientation every frame. This module estimates that rotation from the background. Per frame: a downscaled grey
image; corners (``cv2.goodFeaturesToTrack``) tracked from the previous frame (``cv2.calcOpticalFlowPyrLK``),
re-detected when too few survive; every point inside a person's box (padded) left out, since people move on their
own; the points turned into unit camera rays with the intrinsics (undistorted first, for a lens with
distortion). Each point keeps the ray it had when it was found, turned into the first frame's axes, and each frame's
rotation is fitted to those rays directly, robustly (RANSAC over minimal two-ray samples, then a least-squares
Kabsch/SVD refit on the inliers): per-frame errors do not add up as chained frame-to-frame steps would, and points
that stay put in the image while the camera turns (a speck on the lens, compression blocks) soon fall out.

Convention: ``rotations[t]`` is camera-at-frame-t-from-camera-at-frame-0. A fixed direction in the scene (a distant
background point) with coordinates ``d0`` in the first frame's camera axes (x right, y down, z forward) has
coordinates ``d_t = rotations[t] @ d0`` in frame t's camera axes, and pixels move by the homography
``u_t ~ K rotations[t] K^-1 u_0``. So ``rotations[t].T @ x_t`` brings a frame-t camera-space point into the
first frame's axes. ``rotations[0]`` is the identity.

Only rotation is modelled (a camera on a tripod or held in place and turned): a camera that also moves through
the scene (walking, driving, a drone) gives parallax that this model cannot explain. Such frames fit poorly, and the
estimate follows the distant background where there is one.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from wildpose.camera import CameraIntrinsics, undistort_keypoints
from wildpose.types import People2D

log = logging.getLogger(__name__)

STATIC_THRESHOLD_DEG = 1.0
"""A camera whose rotation never leaves this many degrees from its first frame counts as static."""


@dataclass(frozen=True)
class MotionConfig:
    """Settings of :class:`CameraMotionEstimator` (defaults measured on the test videos: see docs/CAMERA.md)."""

    max_side: int = 480  # pixels: the working image's longer side (never upscaled)
    max_features: int = 200  # corners tracked at most
    min_features: int = 120  # re-detect corners when fewer than this survive
    min_distance: float = 8.0  # working pixels between corners
    quality: float = 0.001  # goodFeaturesToTrack's qualityLevel (relative to the strongest corner)
    box_pad: float = 0.15  # each person's box grows by this share of its width/height on every side
    threshold_px: float = 1.5  # working pixels: a ray pair further apart than this (after rotation) is an outlier
    iterations: int = 64  # RANSAC hypotheses per frame
    min_inliers: int = 15  # a fit with fewer inliers fails (the rotation is held)
    min_inlier_ratio: float = 0.3  # ... or with fewer than this share of the tracked points
    seed: int = 0
    window: int = 21  # LK window, working pixels
    block_size: int = 15  # goodFeaturesToTrack's blockSize: corners with structure larger than compression blocks
    min_eigen: float = 1e-4  # LK's minEigThreshold: drop points whose window is too flat to place
    anchored: bool = True  # fit each frame to the points' first-frame rays (False: chain frame-to-frame steps)


@dataclass
class CameraMotion:
    """A camera's rotation over a video.

    Attributes
    ----------
    rotations : ndarray, (T, 3, 3) float64
        Camera-at-frame-t-from-camera-at-frame-0 (``d_t = rotations[t] @ d_0`` for a direction ``d``; see the
        module docstring). ``rotations[0]`` is the identity.
    inliers : ndarray, (T,) int32
        Point pairs that agreed with the rotation from frame t-1 to t (0 for frame 0 and where the fit failed).
    tracked : ndarray, (T,) int32
        Background point pairs available for that fit.
    held : ndarray, (T,) bool
        True where the fit failed (a cut, a blank or featureless frame, the background hidden): the rotation of
        the previous frame is held, so the rotation across the gap is unknown.
    """

    rotations: np.ndarray
    inliers: np.ndarray
    tracked: np.ndarray
    held: np.ndarray

    def __post_init__(self):
        self.rotations = np.asarray(self.rotations, np.float64)
        T = len(self.rotations)
        if self.rotations.shape != (T, 3, 3):
            raise ValueError(f"rotations: expected shape (T, 3, 3), got {self.rotations.shape}")
        self.inliers = np.asarray(self.inliers, np.int32).reshape(T)
        self.tracked = np.asarray(self.tracked, np.int32).reshape(T)
        self.held = np.asarray(self.held, bool).reshape(T)

    def __len__(self) -> int:
        return len(self.rotations)

    @property
    def angles_deg(self) -> np.ndarray:
        """(T,) float64: how far (degrees, about any axis) the camera has turned from the first frame."""
        trace = np.trace(self.rotations, axis1=1, axis2=2)
        return np.degrees(np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0)))

    @property
    def max_angle_deg(self) -> float:
        """The largest rotation away from the first frame, degrees (0 for an empty result)."""
        return float(self.angles_deg.max()) if len(self) else 0.0

    @property
    def pan_tilt_deg(self) -> np.ndarray:
        """(T, 2) float64 degrees: where the optical axis points, in the first frame's camera axes. Pan > 0 turns
        right (towards the first frame's +x), tilt > 0 turns up (towards its -y)."""
        axis = self.rotations[:, 2, :]  # R^T e_z: the frame-t optical axis in frame-0 axes
        pan = np.degrees(np.arctan2(axis[:, 0], axis[:, 2]))
        tilt = np.degrees(np.arctan2(-axis[:, 1], np.hypot(axis[:, 0], axis[:, 2])))
        return np.stack([pan, tilt], axis=1)

    def is_static(self, threshold_deg: float = STATIC_THRESHOLD_DEG) -> bool:
        """True when the camera never turns more than ``threshold_deg`` degrees from its first frame."""
        return self.max_angle_deg < threshold_deg


def person_boxes(people: People2D, min_score: float = 0.1) -> np.ndarray:
    """Boxes that hold each person: the detector's box joined with the extent of the keypoints scoring at least
    ``min_score``. (N, 17, 3) keypoints + (N, 5) boxes -> (N, 4) float32 x1, y1, x2, y2 pixels (unpadded)."""
    boxes = np.asarray(people.boxes[:, :4], np.float64).copy()
    kp = np.asarray(people.keypoints, np.float64)
    if len(kp):
        seen = (kp[..., 2] >= min_score) & np.isfinite(kp[..., :2]).all(-1)
        xs = np.where(seen, kp[..., 0], np.nan)
        ys = np.where(seen, kp[..., 1], np.nan)
        any_seen = seen.any(axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # people with no keypoint seen: all-NaN rows
            ext = np.stack([np.nanmin(xs, 1), np.nanmin(ys, 1), np.nanmax(xs, 1), np.nanmax(ys, 1)], axis=1)
        ext[~any_seen] = boxes[~any_seen]
        boxes = np.concatenate([np.minimum(boxes[:, :2], ext[:, :2]), np.maximum(boxes[:, 2:], ext[:, 2:])], axis=1)
    boxes = boxes[np.isfinite(boxes).all(axis=1)]
    return boxes.astype(np.float32)


def _kabsch(a: np.ndarray, b: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """The rotation R minimising sum w |b - R a|^2: (..., n, 3) unit rays -> (..., 3, 3)."""
    if w is not None:
        a = a * w[..., None]
    m = np.einsum("...ni,...nj->...ij", a, b)  # sum of a b^T
    u, _, vt = np.linalg.svd(m)
    v = np.swapaxes(vt, -1, -2)
    d = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    d = np.where(d == 0, 1.0, d)
    v = v.copy()
    v[..., :, 2] *= d[..., None]  # a reflection is no rotation: flip the weakest axis
    return v @ np.swapaxes(u, -1, -2)


def _orthonormal(r: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(r)
    out = u @ vt
    if np.linalg.det(out) < 0:
        u[:, 2] *= -1
        out = u @ vt
    return out


def fit_rotation(a: np.ndarray, b: np.ndarray, threshold: float, *, iterations: int = 64,
                 rng: np.random.Generator | None = None,
                 hypotheses: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Robust rotation between two sets of unit rays: ``b ≈ R @ a``.

    RANSAC over minimal two-ray samples (plus any ``hypotheses`` given, e.g. the identity or the previous
    frame's step), then a Kabsch/SVD least-squares refit on the inliers, twice.

    Parameters
    ----------
    a, b : ndarray, (N, 3)
        Unit rays (camera axes) of the same points in two frames.
    threshold : float
        Radians (chord length between unit rays, about the angle): pairs further apart after rotation are outliers.
    iterations : int
        Random two-ray hypotheses.
    rng : numpy Generator, optional
        For the samples; default a fixed seed (deterministic).
    hypotheses : sequence of (3, 3) arrays
        Extra candidate rotations scored with the random ones.

    Returns
    -------
    rotation : ndarray, (3, 3) float64
        The identity when fewer than 2 pairs are given.
    inliers : ndarray, (N,) bool
    """
    a = np.asarray(a, np.float64).reshape(-1, 3)
    b = np.asarray(b, np.float64).reshape(-1, 3)
    n = len(a)
    if n != len(b):
        raise ValueError(f"a and b: expected the same number of rays, got {n} and {len(b)}")
    if n < 2:
        return np.eye(3), np.zeros(n, bool)
    rng = rng if rng is not None else np.random.default_rng(0)
    i = rng.integers(0, n, iterations)
    j = (i + rng.integers(1, n, iterations)) % n  # j != i
    cand = _kabsch(np.stack([a[i], a[j]], 1), np.stack([b[i], b[j]], 1))
    if len(hypotheses):
        cand = np.concatenate([cand, np.asarray(hypotheses, np.float64).reshape(-1, 3, 3)])
    err = np.linalg.norm(b[None] - np.einsum("hij,nj->hni", cand, a), axis=-1)  # (H, N)
    inl = err < threshold
    best = int(np.argmax(inl.sum(1) - 1e-3 * np.minimum(err, threshold).mean(1)))
    rot, mask = cand[best], inl[best]
    for _ in range(2):
        if mask.sum() < 2:
            break
        rot = _kabsch(a[mask], b[mask])
        mask = np.linalg.norm(b - a @ rot.T, axis=-1) < threshold
    return rot, mask


class CameraMotionEstimator:
    """Streaming estimate of a camera's rotation: feed every frame in order, then read :meth:`result`.

    Holds only the previous working-size grey frame and the tracked points.

    Parameters
    ----------
    intrinsics : CameraIntrinsics, or a callable (width, height) -> CameraIntrinsics, optional
        The camera of the frames (pixels of the displayed frame); a callable is asked once, with the first
        frame's size. Default ``CameraIntrinsics.default`` for the first frame's size (60 degrees across the
        longer side). The angles scale with the focal length used:
        a focal length too long by some factor makes every rotation smaller by about that factor.
    config : MotionConfig, optional
    """

    def __init__(self, intrinsics: CameraIntrinsics | Callable[[tuple[int, int]], CameraIntrinsics] | None = None,
                 config: MotionConfig = MotionConfig()):
        self.intrinsics = intrinsics
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._size: tuple[int, int] | None = None  # (width, height) of the full frames
        self._scale = 1.0
        self._prev: np.ndarray | None = None
        self._prev_boxes = np.zeros((0, 4), np.float32)
        self._points = np.zeros((0, 2), np.float32)  # working pixels in the previous frame
        self._anchors = np.zeros((0, 3))  # each point's unit ray in the first frame's camera axes
        self._current = np.eye(3)
        self._step = np.eye(3)
        self._rotations: list[np.ndarray] = []
        self._inliers: list[int] = []
        self._tracked: list[int] = []
        self._held: list[bool] = []

    def __len__(self) -> int:
        return len(self._rotations)

    # -- per frame ---------------------------------------------------------------------------------------------
    def update(self, image: np.ndarray, boxes: np.ndarray | People2D | None = None) -> np.ndarray:
        """Add the next frame.

        Parameters
        ----------
        image : ndarray, (H, W, 3) uint8 RGB or (H, W) uint8 grey
            The displayed frame (the pixels the keypoints refer to).
        boxes : ndarray (N, >=4) or People2D, optional
            People in this frame, x1, y1, x2, y2 pixels (extra columns ignored; a People2D gives
            :func:`person_boxes`). They are padded by ``config.box_pad`` and their pixels left out.

        Returns
        -------
        ndarray, (3, 3) float64
            This frame's rotation (camera-at-this-frame-from-camera-at-frame-0).

        Raises
        ------
        ValueError
            for an image that is not 2D/3-channel or whose size differs from the first frame's.
        """
        import cv2

        cfg = self.config
        grey = self._working_image(image)
        small = self._boxes(boxes)
        tracked = inliers = 0
        held = False
        if self._prev is None:
            self._points, self._anchors = np.zeros((0, 2), np.float32), np.zeros((0, 3))
        else:
            keep = np.zeros(len(self._points), bool)
            cur = np.zeros((0, 2), np.float32)
            if len(self._points):
                cur, status, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, self._points.reshape(-1, 1, 2), None,
                                                         winSize=(cfg.window, cfg.window), maxLevel=3, criteria=(3, 20, 0.03),
                                                         minEigThreshold=cfg.min_eigen)
                cur = cur.reshape(-1, 2)
                h, w = grey.shape
                keep = (status.reshape(-1) == 1) & np.isfinite(cur).all(1)
                keep &= (cur[:, 0] >= 0) & (cur[:, 0] <= w - 1) & (cur[:, 1] >= 0) & (cur[:, 1] <= h - 1)
                # a background point that a person walked over follows the person: drop pairs with either end
                # inside a box
                keep &= ~_inside(self._points, self._prev_boxes) & ~_inside(cur, small)
            b = self._rays(cur[keep])
            finite = np.isfinite(b).all(1)
            idx = np.flatnonzero(keep)[finite]
            b = b[finite]
            tracked = len(idx)
            f_work = self._scale * 0.5 * (self._intr.fx + self._intr.fy)
            if cfg.anchored:
                # each point's ray in the first frame's axes, fixed when it was found: fitting R_t to those
                # directly does not accumulate the per-frame errors, and a point that stays put in the image
                # while the camera turns (a speck on the lens, compression blocks, an edge sliding along itself)
                # leaves the inliers as soon as the turn since it was found exceeds the threshold
                a = self._anchors[idx]
                hyp = (self._current, self._step @ self._current)
            else:
                a = self._rays(self._points[idx])
                hyp = (np.eye(3), self._step)
            fit, mask = fit_rotation(a, b, cfg.threshold_px / f_work, iterations=cfg.iterations, rng=self._rng,
                                     hypotheses=hyp)
            inliers = int(mask.sum())
            if inliers >= cfg.min_inliers and inliers >= cfg.min_inlier_ratio * tracked:
                new = _orthonormal(fit if cfg.anchored else fit @ self._current)
                self._step = new @ self._current.T
                self._current = new
                self._points = cur[idx[mask]].astype(np.float32)
                self._anchors = self._anchors[idx[mask]]
            else:
                held = True
                self._step = np.eye(3)
                # start afresh from this frame
                self._points, self._anchors = np.zeros((0, 2), np.float32), np.zeros((0, 3))
                log.debug("camera motion: frame %d: %d inliers of %d tracked points; rotation held",
                          len(self._rotations), inliers, tracked)
                inliers = 0
        if len(self._points) < cfg.min_features:
            self._detect(grey, small)
        self._prev, self._prev_boxes = grey, small
        self._rotations.append(self._current.copy())
        self._inliers.append(inliers)
        self._tracked.append(tracked)
        self._held.append(held)
        return self._current.copy()

    def result(self) -> CameraMotion:
        """The rotations so far, (T, 3, 3), with inlier counts and held flags (see :class:`CameraMotion`)."""
        T = len(self._rotations)
        rot = np.stack(self._rotations) if T else np.zeros((0, 3, 3))
        return CameraMotion(rot, np.array(self._inliers, np.int32), np.array(self._tracked, np.int32),
                            np.array(self._held, bool))

    # -- helpers -----------------------------------------------------------------------------------------------
    def _working_image(self, image: np.ndarray) -> np.ndarray:
        import cv2

        img = np.asarray(image)
        if img.ndim == 3 and img.shape[2] in (3, 4):
            grey = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
        elif img.ndim == 2:
            grey = img
        else:
            raise ValueError(f"image: expected (H, W, 3) RGB or (H, W) grey, got shape {img.shape}")
        if grey.dtype != np.uint8:
            grey = np.clip(grey, 0, 255).astype(np.uint8)
        h, w = grey.shape
        if self._size is None:
            self._size = (w, h)
            self._scale = min(1.0, self.config.max_side / max(w, h))
            if self.intrinsics is None:
                self.intrinsics = CameraIntrinsics.default((w, h))
            elif not isinstance(self.intrinsics, CameraIntrinsics):
                self.intrinsics = self.intrinsics((w, h))
            self._intr = self.intrinsics
        elif (w, h) != self._size:
            raise ValueError(f"image: frame {len(self._rotations)} is {w}x{h}, the first frame was "
                             f"{self._size[0]}x{self._size[1]}")
        if self._scale < 1.0:
            size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(grey)

    def _boxes(self, boxes) -> np.ndarray:
        if boxes is None:
            return np.zeros((0, 4), np.float32)
        if isinstance(boxes, People2D):
            boxes = person_boxes(boxes)
        b = np.asarray(boxes, np.float64)
        if b.size == 0:
            return np.zeros((0, 4), np.float32)
        if b.ndim != 2 or b.shape[1] < 4:
            raise ValueError(f"boxes: expected shape (N, 4) or (N, 5) x1, y1, x2, y2 pixels, got {b.shape}")
        b = b[np.isfinite(b[:, :4]).all(1), :4]
        pad = self.config.box_pad * np.abs(b[:, 2:] - b[:, :2])
        b = np.concatenate([b[:, :2] - pad, b[:, 2:] + pad], axis=1)
        return (b * self._scale).astype(np.float32)

    def _detect(self, grey: np.ndarray, boxes: np.ndarray) -> None:
        import cv2

        cfg = self.config
        want = cfg.max_features - len(self._points)
        if want <= 0:
            return
        mask = np.full(grey.shape, 255, np.uint8)
        h, w = grey.shape
        for x1, y1, x2, y2 in boxes:
            x1, y1 = max(0, int(math.floor(x1))), max(0, int(math.floor(y1)))
            x2, y2 = min(w, int(math.ceil(x2)) + 1), min(h, int(math.ceil(y2)) + 1)
            if x2 > x1 and y2 > y1:
                mask[y1:y2, x1:x2] = 0
        radius = max(1, int(round(cfg.min_distance)))
        for x, y in self._points:  # new corners away from the ones still tracked
            cv2.circle(mask, (int(round(x)), int(round(y))), radius, 0, -1)
        found = cv2.goodFeaturesToTrack(grey, maxCorners=want, qualityLevel=cfg.quality,
                                        minDistance=cfg.min_distance, mask=mask, blockSize=cfg.block_size)
        if found is not None and len(found):
            found = found.reshape(-1, 2).astype(np.float32)
            rays = self._rays(found)
            ok = np.isfinite(rays).all(1)
            self._points = np.concatenate([self._points, found[ok]])
            self._anchors = np.concatenate([self._anchors, rays[ok] @ self._current])  # R_t^T r, row-wise

    def _rays(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) working pixels -> (N, 3) unit rays in camera axes (NaN where the lens model cannot place one)."""
        if len(points) == 0:
            return np.zeros((0, 3))
        intr = self._intr
        # pixel centres: working pixel i covers full-resolution pixels [i/s, (i+1)/s)
        full = (np.asarray(points, np.float64) + 0.5) / self._scale - 0.5
        if intr.is_distorted:
            full = undistort_keypoints(full, intr)
        rays = np.empty((len(full), 3))
        rays[:, 0] = (full[:, 0] - intr.cx) / intr.fx
        rays[:, 1] = (full[:, 1] - intr.cy) / intr.fy
        rays[:, 2] = 1.0
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)


def _inside(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, 2) points, (B, 4) boxes -> (N,) bool: inside any box."""
    if len(boxes) == 0 or len(points) == 0:
        return np.zeros(len(points), bool)
    x, y = points[:, 0:1], points[:, 1:2]
    return ((x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])).any(axis=1)


def estimate_camera_motion(path: str | os.PathLike, intrinsics: CameraIntrinsics | None = None, *,
                           start: float | None = None, end: float | None = None,
                           people: Iterable[People2D] | None = None, detector=None, mask_people: bool = True,
                           config: MotionConfig = MotionConfig()) -> CameraMotion:
    """A video's camera rotation over time (frames streamed, never all held).

    Parameters
    ----------
    path : video file
    intrinsics : CameraIntrinsics, optional
        Default: ``CameraIntrinsics.default`` for the video's displayed size.
    start, end : float, optional
        Seconds, as for ``wildpose.video.read_frames``.
    people : iterable of People2D, optional
        Everyone in each decoded frame (e.g. from ``pipeline.detect_video``), to leave their pixels out. Default:
        run ``detector`` (default: MoveNet, as ``pipeline.make_detector()`` makes it) on each frame, unless ``mask_people``
        is False (then nothing is left out: only for videos without moving people).
    config : MotionConfig

    Returns
    -------
    CameraMotion

    Raises
    ------
    VideoError
        if the video cannot be decoded or holds no frame in the segment.
    """
    from wildpose.errors import VideoError
    from wildpose.video import read_frames

    people_iter = iter(people) if people is not None else None
    if people_iter is None and mask_people and detector is None:
        # the detector the pipeline uses (people kept down to the tracker's second-chance score, so that small
        # and half-hidden people are masked too), made here: the pipeline imports this module, not the reverse
        from wildpose.detect2d import create_detector
        from wildpose.track import TrackerConfig

        detector = create_detector("movenet", score_threshold=TrackerConfig().low_score)
    estimator = CameraMotionEstimator(intrinsics, config)
    for frame in read_frames(path, start=start, end=end):
        if people_iter is not None:
            found = next(people_iter, None)
        elif mask_people:
            found = detector(frame.image)
        else:
            found = None
        estimator.update(frame.image, found)
    if len(estimator) == 0:
        raise VideoError("no frames decoded" + (" in the selected segment" if start or end else ""), path)
    return estimator.result()


__all__ = ["CameraMotion", "CameraMotionEstimator", "MotionConfig", "STATIC_THRESHOLD_DEG", "estimate_camera_motion",
           "fit_rotation", "person_boxes"]
