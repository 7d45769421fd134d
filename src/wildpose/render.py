"""Side-by-side render: the input video with every tracked person's 2D skeleton on the left, the same people in
a 3D view on the right, streamed frame by frame (memory holds one frame, never the clip: the reference's
renderer held every decoded frame and ran out of memory on long videos).

Drawing is OpenCV (anti-aliased lines with sub-pixel positions, Hershey text); the 3D view is our own small
perspective projection with a fixed camera fitted once to the whole clip, so the view is steady. Drawing never
changes the result it draws.
"""

from __future__ import annotations

import colorsys
import functools
import logging
import math
import os
from typing import Callable

import cv2
import numpy as np
from scipy.ndimage import median_filter, uniform_filter1d

from wildpose import skeleton
from wildpose.errors import VideoError
from wildpose.lift.normalize import focal_from_fov
from wildpose.types import Result
from wildpose.video import VideoWriter, probe, read_frames

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]

# RGB. Left limbs blue, right limbs red (the usual convention of pose viewers), the midline amber.
LEFT_COLOR = (40, 120, 255)
RIGHT_COLOR = (240, 50, 40)
CENTRE_COLOR = (255, 190, 30)
BACKGROUND_3D = (24, 26, 30)
GRID_COLOR = (72, 76, 86)
SHADOW_COLOR = (44, 46, 52)

# keypoints below this score are not drawn (MoveNet marks guessed joints with low scores)
MIN_SCORE = 0.2
# the limb joints shared by both layouts: (COCO index, H36M index), used to fit 3D poses to 2D keypoints
_COCO_TO_H36M = np.array([
    (5, 11), (6, 14), (7, 12), (8, 15), (9, 13), (10, 16),
    (11, 4), (12, 1), (13, 5), (14, 2), (15, 6), (16, 3),
])
_SHIFT = 4  # cv2 fixed-point fraction bits: sub-pixel endpoints so slow motion does not jitter
_ONE = 1 << _SHIFT


def _bone_sides(bones, left, right) -> np.ndarray:
    """0 = midline, 1 = left, 2 = right for each bone: a bone touching only left (right) joints is left (right)."""
    left, right = set(left), set(right)
    sides = []
    for a, b in bones:
        is_left = a in left or b in left
        is_right = a in right or b in right
        sides.append(1 if is_left and not is_right else 2 if is_right and not is_left else 0)
    return np.array(sides)


_COCO_BONES = np.array(skeleton.COCO_BONES)
_H36M_BONES = np.array(skeleton.H36M_BONES)
_COCO_SIDES = _bone_sides(skeleton.COCO_BONES, skeleton.COCO_LEFT, skeleton.COCO_RIGHT)
_H36M_SIDES = _bone_sides(skeleton.H36M_BONES, skeleton.H36M_LEFT, skeleton.H36M_RIGHT)
_SIDE_COLORS = (CENTRE_COLOR, LEFT_COLOR, RIGHT_COLOR)
_H36M_HEAD = skeleton.H36M_NAMES.index("head")
# (parent, child, colour) as plain Python values: the per-frame loops index them thousands of times
_COCO_DRAW = tuple((int(a), int(b), _SIDE_COLORS[s]) for (a, b), s in zip(_COCO_BONES, _COCO_SIDES))
_H36M_DRAW = tuple((int(a), int(b), _SIDE_COLORS[s]) for (a, b), s in zip(_H36M_BONES, _H36M_SIDES))


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a track id (golden-ratio steps around the hue circle)."""
    hue = (int(track_id) * 0.618033988749895 + 0.11) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.6, 0.95)
    return (int(r * 255), int(g * 255), int(b * 255))


# ---------------------------------------------------------------------------------------------- drawing helpers

def _fixed(xy: np.ndarray) -> list[tuple[int, int]]:
    """(N, 2) float pixels -> cv2's fixed-point (x, y) int tuples, in one numpy pass (drawing calls are many
    and small, so per-point Python conversions would cost more than the drawing). NaN becomes 0: callers
    skip absent joints."""
    q = np.round(np.nan_to_num(np.asarray(xy, np.float64), nan=0.0) * _ONE)
    q = np.clip(q, -(2 ** 28), 2 ** 28).astype(np.int64)  # far-off projections must not overflow cv2's ints
    return [tuple(v) for v in q.tolist()]


def _line(img: np.ndarray, p0: tuple[int, int], p1: tuple[int, int], color, thickness: int, dashed: bool,
          dash: float) -> None:
    """Anti-aliased line between fixed-point points; dashed lines mark interpolated (not detected) poses."""
    if not dashed:
        cv2.line(img, p0, p1, color, thickness, cv2.LINE_AA, _SHIFT)
        return
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    length = math.hypot(dx, dy) / _ONE
    if length < 1e-6:
        return
    period = 2.0 * dash
    for i in range(int(length // period) + 1):
        s0, s1 = i * period / length, min(i * period + dash, length) / length
        if s1 <= s0:
            break
        cv2.line(img, (int(p0[0] + dx * s0), int(p0[1] + dy * s0)), (int(p0[0] + dx * s1), int(p0[1] + dy * s1)),
                 color, thickness, cv2.LINE_AA, _SHIFT)


@functools.lru_cache(maxsize=4096)
def _text_size(text: str, scale: float, thickness: int) -> tuple[int, int, int]:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    return tw, th, base


def _label(img: np.ndarray, text: str, centre_x: float, bottom_y: float, color, scale: float) -> None:
    """A filled tag in the track's colour with the id in black or white, whichever reads better."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    thickness = 1 if scale < 0.8 else 2
    tw, th, base = _text_size(text, scale, thickness)
    pad = max(1, int(round(2 * scale)))
    box_w, box_h = tw + 2 * pad, th + base + 2 * pad
    # kept inside the image, so people cut by its edge still show their id
    x0 = int(np.clip(round(centre_x - box_w / 2), 0, max(0, img.shape[1] - box_w)))
    y1 = int(np.clip(round(bottom_y), box_h, img.shape[0]))
    y0 = y1 - box_h
    cv2.rectangle(img, (x0, y0), (x0 + box_w, y1), color, -1)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(img, text, (x0 + pad, y1 - pad - base), font, scale, ink, thickness, cv2.LINE_AA)


def draw_skeletons_2d(image: np.ndarray, keypoints: np.ndarray, track_ids: np.ndarray | None = None,
                      interpolated: np.ndarray | None = None, *, min_score: float = MIN_SCORE,
                      thickness: int | None = None) -> np.ndarray:
    """Draw COCO-17 skeletons, joints and id tags onto ``image`` in place.

    Parameters
    ----------
    image : (H, W, 3) uint8 RGB, contiguous and writable; drawn on in place.
    keypoints : (N, 17, 3) x, y in pixels of ``image`` and score; rows of NaN (absent people) are skipped.
    track_ids : (N,) int, drawn as a tag above each head in the track's colour; None draws no tags.
    interpolated : (N,) bool, people whose pose was filled in rather than detected: drawn dashed.
    min_score : joints scoring below this are not drawn, nor the bones touching them.
    thickness : line width in pixels; default scales with the image height (2 px at 360 lines).

    Returns
    -------
    image, for chaining.
    """
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, 17, 3)
    h = image.shape[0]
    thickness = thickness or max(1, int(round(h / 200)))
    dash = 3.0 * thickness + 2
    radius = thickness + 1
    for n, kp in enumerate(keypoints):
        ok = np.isfinite(kp[:, :2]).all(1) & (kp[:, 2] >= min_score)
        if not ok.any():
            continue
        dashed = bool(interpolated[n]) if interpolated is not None else False
        tid = int(track_ids[n]) if track_ids is not None else n
        color = track_color(tid)
        pts = _fixed(kp[:, :2])
        okl = ok.tolist()
        for a, b, bone_color in _COCO_DRAW:
            if okl[a] and okl[b]:
                _line(image, pts[a], pts[b], bone_color, thickness, dashed, dash)
        for j in np.flatnonzero(ok).tolist():
            cv2.circle(image, pts[j], radius * _ONE, color, -1, cv2.LINE_AA, _SHIFT)
        if track_ids is not None:
            head = ok.copy()
            head[5:] = False
            pts = kp[head if head.any() else ok, :2]
            top = float(kp[ok, 1].min())
            _label(image, str(tid), float(pts[:, 0].mean()), top - 2 * radius, color, max(0.35, h / 900))
    return image


# ---------------------------------------------------------------------------------------------- 3D placement

def _smooth_track(values: np.ndarray, ok: np.ndarray, times: np.ndarray, window: int) -> np.ndarray:
    """(n, 3) values of one track's rows, valid where ``ok``: median then mean filtered over the valid samples,
    linearly filled across gaps (in time, ``times`` (n,) the rows' timestamps) and held at the ends."""
    out = np.full(values.shape, np.nan, np.float64)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return out
    v = values[idx].astype(np.float64)
    if len(idx) >= 3:
        w = min(window, len(idx) - (1 - len(idx) % 2))
        v = median_filter(v, size=(max(1, w), 1), mode="nearest")
        v = uniform_filter1d(v, size=max(1, w // 2 * 2 - 1), axis=0, mode="nearest")
    for k in range(3):
        out[:, k] = np.interp(times, times[idx], v[:, k])
    return out


def estimate_root_positions(result: Result, focal: float | None = None, *, min_score: float = MIN_SCORE,
                            smooth_seconds: float = 0.5) -> np.ndarray:
    """A rough weak-perspective guess of where each person's root (pelvis) is in camera space.

    The 3D poses are root-relative, so on their own they say nothing about where people stand. For each track
    and frame this fits the 3D pose's x, y to the 2D keypoints of the limb joints with one scale and one
    offset (least squares): ``u ~= s * X + c``. The scale ``s`` (pixels per metre) gives the depth
    ``focal / s`` and the offset ``c`` is the root's pixel position, so the root is
    ``depth * ((c - image_centre) / focal, 1)``. The result is median and mean filtered over about
    ``smooth_seconds`` and filled across frames where the fit fails. It ignores perspective within the body,
    depends on the guessed focal length and on people being of the size the lifter assumes: good enough to
    place people apart in a viewer, not a measurement.

    Parameters
    ----------
    result : the poses (rows: ``keypoints_2d`` (N, 17, 3) pixels, ``poses_3d`` (N, 17, 3) metres).
    focal : focal length in pixels; default ``focal_from_fov(result.image_size)``.
    min_score : 2D keypoints scoring below this are left out of the fit.
    smooth_seconds : length of the smoothing window in seconds.

    Returns
    -------
    (N, 3) float32 metres, camera axes (x right, y down, z forward), a row per row of ``result``; NaN where
    no frame of the track could be fitted.
    """
    w_img, h_img = (float(v) for v in result.image_size)
    f = float(focal) if focal is not None else focal_from_fov((w_img, h_img))
    centre = np.array([w_img / 2.0, h_img / 2.0])
    times = np.asarray(result.timestamps, np.float64)
    fps = result.fps if result.fps > 0 else 30.0
    window = max(1, int(round(smooth_seconds * fps)) | 1)
    out = np.full((result.num_rows, 3), np.nan, np.float32)
    for p in range(len(result)):  # one track at a time: float64 temporaries of one track's rows only
        rows = result.track(p)
        kp = result.keypoints_2d[rows][:, _COCO_TO_H36M[:, 0]].astype(np.float64)  # (n, 12, 3)
        pose = result.poses_3d[rows][:, _COCO_TO_H36M[:, 1], :2].astype(np.float64)  # (n, 12, 2)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(kp).all(-1) & (kp[..., 2] >= min_score) & np.isfinite(pose).all(-1)
        w = valid.astype(np.float64)[..., None]
        n = w.sum(-2)  # (n, 1)
        u = np.where(valid[..., None], kp[..., :2], 0.0)
        x = np.where(valid[..., None], pose, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mu_u = (w * u).sum(-2) / n
            mu_x = (w * x).sum(-2) / n
            du = (u - mu_u[..., None, :]) * w
            dx = (x - mu_x[..., None, :]) * w
            s = (du * dx).sum((-1, -2)) / (dx * dx).sum((-1, -2))  # (n,) pixels per metre
            c = mu_u - s[..., None] * mu_x  # the root's pixel position (the root is at X = 0)
            depth = f / s
            roots = np.concatenate([(c - centre) / s[..., None], depth[..., None]], -1)
            # trust a fit only where the joints used span a body-sized extent (a few joints bunched together
            # give any scale) and where the scaled pose explains the keypoints (relative residual <= 30 %)
            spread2 = (dx * dx).sum((-1, -2)) / n[..., 0]
            resid2 = ((du - s[..., None, None] * dx) ** 2 * w).sum((-1, -2)) / n[..., 0]
            usable = ((n[..., 0] >= 5) & np.isfinite(roots).all(-1) & (s > 1e-3) & (spread2 >= 0.15 ** 2)
                      & (depth >= 0.3) & (depth <= 300.0))
            ok = usable & (resid2 <= (0.3 * s) ** 2 * spread2)
        # a track none of whose frames fits well is still better placed by its loose fits than not at all
        if not ok.any():
            ok = usable
        out[rows] = _smooth_track(roots, ok, times[result.frame_index[rows]], window)
    return out


def _root_positions(result: Result) -> np.ndarray:
    """(N, 3) camera-space roots: the result's own trajectory where it has one, else the 2D estimate;
    tracks that cannot be placed at all stand at the median of everyone else (or 3 m ahead)."""
    roots = None if result.trajectory is None else result.trajectory.copy()
    missing = None if roots is None else ~np.isfinite(roots).all(-1)
    if roots is None or missing.any():
        guess = estimate_root_positions(result)
        roots = guess if roots is None else np.where(missing[:, None], guess, roots)
    placed = np.isfinite(roots).all(-1)
    if not placed.all():
        fallback = np.nanmedian(roots[placed], 0) if placed.any() else np.array([0.0, 0.0, 3.0])
        roots[~placed] = fallback
    return roots.astype(np.float32)


def _lowest_joints(joints: np.ndarray, ok: np.ndarray | None = None) -> np.ndarray:
    """(M, 3) float64: the lowest joint (display y up) of every pose (of those where ``ok``); gathers the
    M points without copying the poses."""
    rows = np.arange(len(joints)) if ok is None else np.flatnonzero(ok)
    if len(rows) == 0:
        return np.zeros((0, 3))
    lowest = np.argmin(joints[:, :, 1], axis=1)[rows]
    return joints[rows, lowest].astype(np.float64)


def _place_people(result: Result) -> tuple[np.ndarray, np.ndarray]:
    """Everyone's joints in display space, rows (N, 17, 3) float32 metres (x right, y up), and the lowest
    joint of every pose (M, 3), which the ground grid is laid under.

    ``result.poses_world`` (wildpose.world.align_world: its world axes are the display axes, the floor is
    at y = 0) is used as it is. Otherwise roots come from ``result.trajectory`` or the weak-perspective
    estimate; the scene is turned level (pitch only) and, for estimated roots, each track is shifted
    vertically so that its feet are on the common ground on average: the estimate's height errors differ
    from person to person (body size, fit) and would leave people floating or sunk, while the motion within
    a track (a jump) is kept.
    """
    if result.poses_world is not None:
        # already in world axes (x right, y up, z towards the camera, floor at y = 0): the display's axes
        joints = result.poses_world
        return joints, _lowest_joints(joints, np.isfinite(joints).all((-1, -2)))
    roots = _root_positions(result)
    joints = result.poses_3d + roots[:, None, :]
    joints[:, 0] = roots  # the lifter's root joint is ~0 by contract; put it exactly on the root
    joints = _to_display(joints)
    if result.num_rows == 0:
        return joints, np.zeros((0, 3))
    joints = (joints @ _level_rotation(_lowest_joints(joints)).T.astype(np.float32)).astype(np.float32)
    if result.trajectory is None:
        low = joints[..., 1].min(-1)  # (N,)
        common = np.median(low)
        for p in range(len(result)):
            rows = result.track(p)
            if rows.stop > rows.start:
                joints[rows, :, 1] += common - np.median(low[rows])
    return joints, _lowest_joints(joints)


# ---------------------------------------------------------------------------------------------- the 3D view

def _to_display(points: np.ndarray) -> np.ndarray:
    """Camera axes (x right, y down, z forward) -> display axes (x right, y up, z towards the recording
    camera): a half turn about x, a rotation, so the scene is not mirrored."""
    return points * np.array([1.0, -1.0, -1.0], points.dtype)


def _nice_step(extent: float) -> float:
    """1, 2 or 5 times a power of ten, giving about ten grid cells across ``extent``."""
    raw = max(extent, 1e-3) / 10.0
    base = 10.0 ** math.floor(math.log10(raw))
    return next(m * base for m in (1.0, 2.0, 5.0, 10.0) if m * base >= raw)


def _level_rotation(feet: np.ndarray, max_tilt_deg: float = 40.0) -> np.ndarray:
    """Rotation (3, 3) about the x axis that makes the ground the feet stand on horizontal (display axes).

    A camera filming from above sees the ground tilted, and the poses are in that camera's axes. Only the
    pitch is corrected: cameras are usually held level across but often look down, and in a street people
    further away are often also further to one side, which a full plane fit would take for a roll. The slope
    ``dy/dz`` of the lowest joint of every person and frame is fitted by least squares (ridge-regularised
    towards level, since people at one depth do not constrain it; the worst fifth refitted out). Slopes
    steeper than ``max_tilt_deg`` are not trusted.
    """
    if len(feet) < 10:
        return np.eye(3)
    z, y = feet[:, 2], feet[:, 1]
    keep = np.ones(len(feet), bool)
    slope = 0.0
    for _ in range(2):
        zk, yk = z[keep], y[keep]
        zc = zk - zk.mean()
        slope = float((zc * (yk - yk.mean())).sum() / ((zc * zc).sum() + 0.5 * len(zk)))
        resid = np.abs(y - yk.mean() - slope * (z - zk.mean()))
        keep = resid <= np.quantile(resid, 0.8)
    angle = math.atan(slope)
    if abs(angle) > math.radians(max_tilt_deg):
        return np.eye(3)
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])  # takes (0, slope, 1) to the z axis


class _View3D:
    """A fixed perspective camera looking at the clip's people from slightly above, fitted once to all of
    them; ``draw`` paints one frame's people over a pre-drawn ground grid."""

    def __init__(self, width: int, height: int, scene: np.ndarray, feet: np.ndarray, *, azimuth: float,
                 elevation: float, fov_deg: float = 35.0, margin: float = 0.06):
        self.width, self.height = width, height
        self.thickness = max(1, int(round(height / 200)))
        lo, hi = np.percentile(scene, [1, 99], axis=0) if len(scene) > 200 else (scene.min(0), scene.max(0))
        lo, hi = np.minimum(lo, hi - 1.8), np.maximum(hi, lo + 1.8)  # at least a person's size either way
        target = (lo + hi) / 2
        radius = float(np.linalg.norm(hi - lo)) / 2
        self.ground = float(np.median(feet[:, 1])) if len(feet) else float(lo[1])
        target[1] = (self.ground + hi[1]) / 2 if hi[1] > self.ground else target[1]
        az, el = math.radians(azimuth), math.radians(elevation)
        distance = radius / math.sin(math.radians(fov_deg) / 2) * 1.05 + 0.5
        self.eye = target + distance * np.array([math.sin(az) * math.cos(el), math.sin(el),
                                                 math.cos(az) * math.cos(el)])
        fwd = target - self.eye
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, fwd)
        self.R = np.stack([right, -up, fwd])  # view axes: x right, y down (image rows), z depth
        # fit a zoom and a shift so the clip's extent fills the panel once, not per frame: a steady camera
        uv = self._normalised(scene)
        ulo, uhi = (np.percentile(uv, [0.5, 99.5], axis=0) if len(uv) > 200 else (uv.min(0), uv.max(0)))
        span = np.maximum(uhi - ulo, 1e-6)
        usable = np.array([width, height]) * (1 - 2 * margin)
        self.zoom = float(min(usable / span))
        self.offset = np.array([width, height]) / 2 - self.zoom * (ulo + uhi) / 2
        self.background = self._draw_grid(lo, hi)

    def _view(self, pts: np.ndarray) -> np.ndarray:
        return (pts - self.eye) @ self.R.T

    def _normalised(self, pts: np.ndarray) -> np.ndarray:
        v = self._view(pts)
        return v[..., :2] / np.maximum(v[..., 2:3], 1e-3)

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) display-space points -> (..., 2) panel pixels."""
        return self._normalised(pts) * self.zoom + self.offset

    def _draw_grid(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        img = np.empty((self.height, self.width, 3), np.uint8)
        img[:] = BACKGROUND_3D
        extent = max(hi[0] - lo[0], hi[2] - lo[2]) + 2.0
        step = _nice_step(extent)
        x0, x1 = math.floor((lo[0] - 1) / step) * step, math.ceil((hi[0] + 1) / step) * step
        z0, z1 = math.floor((lo[2] - 1) / step) * step, math.ceil((hi[2] + 1) / step) * step
        g = self.ground
        segments = [((x, g, z0), (x, g, z1)) for x in np.arange(x0, x1 + step / 2, step)]
        segments += [((x0, g, z), (x1, g, z)) for z in np.arange(z0, z1 + step / 2, step)]
        near = 0.05
        for a, b in segments:
            a, b = np.array(a), np.array(b)
            va, vb = self._view(a)[2], self._view(b)[2]
            if va < near and vb < near:
                continue
            if va < near or vb < near:  # clip at the near plane so lines behind the camera are not flipped
                t = (near - va) / (vb - va)
                a, b = (a + t * (b - a), b) if va < near else (a, a + t * (b - a))
            pa, pb = _fixed(self.project(np.stack([a, b])))
            cv2.line(img, pa, pb, GRID_COLOR, 1, cv2.LINE_AA, _SHIFT)
        return img

    def draw(self, joints: np.ndarray, track_ids: np.ndarray, interpolated: np.ndarray) -> np.ndarray:
        """A new panel with the people of one frame.

        joints : (N, 17, 3) H36M joints in display space (metres, y up), already placed in the scene.
        """
        img = self.background.copy()
        if len(joints) == 0:
            return img
        t = self.thickness
        dash = 3.0 * t + 2
        depth = self._view(joints[:, 0])[:, 2]
        shadows = joints.copy()
        shadows[..., 1] = self.ground
        px = self.project(joints)
        sx = self.project(shadows)
        order = np.argsort(-depth).tolist()  # far people first, near ones painted over them
        for n in order:
            pts = _fixed(sx[n])
            for a, b, _ in _H36M_DRAW:
                cv2.line(img, pts[a], pts[b], SHADOW_COLOR, t + 1, cv2.LINE_AA, _SHIFT)
        for n in order:
            pts = _fixed(px[n])
            dashed = bool(interpolated[n])
            for a, b, color in _H36M_DRAW:
                _line(img, pts[a], pts[b], color, t, dashed, dash)
            head = px[n, _H36M_HEAD]
            _label(img, str(int(track_ids[n])), float(head[0]), float(head[1]) - 2 * t - 2,
                   track_color(int(track_ids[n])), max(0.35, self.height / 900))
        return img


# ---------------------------------------------------------------------------------------------- the render

def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def _scene_points(joints: np.ndarray, limit: int = 200_000) -> np.ndarray:
    """Joint positions that the fixed 3D view is fitted to: every placed pose's joints, subsampled."""
    step = max(1, math.ceil(len(joints) * 17 / limit))  # long crowded clips: a regular subsample bounds the cost
    pts = joints[::step].reshape(-1, 3)
    return pts[np.isfinite(pts).all(-1)].astype(np.float64)


def render_video(video_path: str | os.PathLike, result: Result, out_path: str | os.PathLike, *,
                 size: int | None = None, start: float | None = None, end: float | None = None,
                 progress: Progress | None = None, view_azimuth: float = -35.0, view_elevation: float = 18.0,
                 min_score: float = MIN_SCORE) -> int:
    """Write a video with the 2D skeletons over the input (left) and the same people in 3D (right).

    Streams: one decoded frame at a time is drawn and encoded (H.264 .mp4 by ``wildpose.video.VideoWriter``)
    at the input's frame rate; the output appears complete under ``out_path`` or not at all.

    Parameters
    ----------
    video_path : the video the result was computed from.
    result : poses of that video (or of the segment ``[start, end)`` of it). Without ``start``/``end`` the
        result's frame t is the video's decoded frame t, and the frame counts must agree; with them, frames
        are matched by timestamp (nearest, within half a frame period).
    out_path : where to write the render (.mp4).
    size : output height in pixels (rounded to even); default the input's height. The left panel is the
        input scaled to that height, the right panel a square 3D view beside it.
    start, end : seconds; render only the decoded frames in ``[start, end)``.
    progress : called as ``progress(frames_done, frames_expected_or_None)`` after each frame.
    view_azimuth : degrees the 3D view's camera is turned about the vertical from the recording camera's
        viewpoint (positive: to the right of it).
    view_elevation : degrees the 3D view's camera looks down on the scene.
    min_score : 2D keypoints scoring below this are not drawn.

    Returns
    -------
    The number of frames written.

    Raises
    ------
    VideoError : the video cannot be read, does not match the result (frame count, size, timestamps), or
        nothing was decoded.
    """
    video_path = os.fspath(video_path)
    info = probe(video_path, fps=result.fps)  # the rate only matters for images: the result's
    T = result.num_frames
    if T == 0:
        raise VideoError("the result has no frames to draw", video_path)
    aligned_by_index = start is None and end is None
    if aligned_by_index and info.num_frames is not None and abs(info.num_frames - T) > 2:
        # containers can miscount by a frame or so; the exact check is made while decoding
        raise VideoError(f"the video has {info.num_frames} frames but the result has {T}: was the result "
                         "made from this video, or from a segment of it (then pass start/end)?", video_path)
    res_w, res_h = (int(v) for v in result.image_size)
    if abs(res_w / res_h - info.width / info.height) > 0.01:
        raise VideoError(f"the result is for {res_w}x{res_h} frames but the video shows "
                         f"{info.width}x{info.height}", video_path)

    out_h = _even(size if size is not None else info.height)
    out_w_left = _even(info.width * out_h / info.height)
    panel_w = _even(out_h)
    sx, sy = out_w_left / res_w, out_h / res_h
    resize = (out_w_left, out_h) != (info.width, info.height)

    # the 3D scene, fixed for the whole clip
    joints, feet_pts = _place_people(result)
    scene = _scene_points(joints)
    if len(scene) == 0:
        scene = np.array([[0.0, 0.0, -3.0], [0.0, 1.8, -3.0]])
    view = _View3D(panel_w, out_h, scene, feet_pts, azimuth=view_azimuth, elevation=view_elevation)
    placed = np.isfinite(joints).all((-1, -2))
    drawn_2d = np.isfinite(result.keypoints_2d[..., :2]).all(-1).any(-1)
    row_ids = result.track_ids[result.row_track()]
    order, frame_rows = result.by_frame()  # frame t's rows: order[frame_rows[t]:frame_rows[t + 1]]
    scale_2d = np.array([sx, sy, 1.0], np.float32)
    times = np.asarray(result.timestamps, np.float64)
    fps = info.fps if info.fps and info.fps > 0 else (result.fps or 25.0)
    tolerance = 0.5 / fps + 1e-4
    if aligned_by_index:
        expected = T
    else:
        lo = -np.inf if start is None else start - tolerance
        hi = np.inf if end is None else end
        expected = int(((times >= lo) & (times < hi)).sum()) or None

    written = 0
    warned = False
    with VideoWriter(out_path, out_w_left + panel_w, out_h, fps) as writer:
        for frame in read_frames(video_path, start=start, end=end, fps=result.fps):
            if aligned_by_index:
                t = frame.index
                if t >= T:
                    raise VideoError(f"the video has more frames than the result ({T}): was the result made "
                                     "from this video, or from a segment of it (then pass start/end)?",
                                     video_path)
                if not warned and abs(times[t] - frame.timestamp) > 2 * tolerance:
                    log.warning("%s: frame %d is at %.3f s but the result's frame %d at %.3f s",
                                video_path, t, frame.timestamp, t, times[t])
                    warned = True
            else:
                t = int(np.clip(np.searchsorted(times, frame.timestamp), 1, T - 1)) if T > 1 else 0
                if T > 1 and abs(times[t - 1] - frame.timestamp) <= abs(times[t] - frame.timestamp):
                    t -= 1
                if abs(times[t] - frame.timestamp) > tolerance:
                    raise VideoError(f"no pose in the result for the frame at {frame.timestamp:.3f} s (the result "
                                     f"covers {times[0]:.3f}-{times[-1]:.3f} s)", video_path)
            image = frame.image
            if resize:
                image = cv2.resize(image, (out_w_left, out_h), interpolation=cv2.INTER_AREA)
            elif not (image.flags.writeable and image.flags.c_contiguous):
                image = np.ascontiguousarray(image).copy()
            rows = order[frame_rows[t]:frame_rows[t + 1]]
            people = rows[drawn_2d[rows]]
            draw_skeletons_2d(image, result.keypoints_2d[people] * scale_2d, row_ids[people],
                              result.interpolated[people], min_score=min_score)
            people3d = rows[placed[rows]]
            panel = view.draw(joints[people3d], row_ids[people3d], result.interpolated[people3d])
            writer.write(np.concatenate([image, panel], axis=1))
            written += 1
            if progress is not None:
                progress(written, expected)
        if written == 0:
            raise VideoError("no frames decoded" + ("" if aligned_by_index else " in the selected segment"),
                             video_path)
        if aligned_by_index and written != T:
            raise VideoError(f"the video has {written} frames but the result has {T}: was the result made from "
                             "this video, or from a segment of it (then pass start/end)?", video_path)
    return written
