"""Test-time refinement of lifted poses against the 2D keypoints they were lifted from.

The lifter regresses each pose from a window of 2D points; on motion unlike its training data it drifts towards
the poses it knows, so its output no longer projects onto the keypoints it was given, and its bone lengths
wander from frame to frame. Three closed-form steps, vectorised over frames, pull it back (measured in
docs/MODEL.md, "Test-time refinement"):

1. **Snap to the rays.** Each of the 13 Human3.6M joints with a 2D counterpart (pelvis, hips, knees, ankles,
   shoulders, elbows, wrists) is moved within its depth plane onto the camera ray through its keypoint. The
   pose's distance from the camera is the one that best fits the lifted pose's size (least squares over
   those joints, in closed form); the depth of each joint relative to the pelvis stays the lifter's. The
   thorax, neck and head follow the shoulders' shift, the spine the mean of the shoulders' and hips'.
2. **Restore the limbs' lengths along the rays.** Down each limb (hip -> knee -> ankle, shoulder -> elbow ->
   wrist) the child joint slides along its ray to the depth at which the bone has its track length; of the
   two such depths the one nearer the lifter's is taken (the lifter decides which way a limb points, the
   length decides how far), and the move is blended by ``bone_blend``. This is Taylor's reconstruction from
   known lengths (CVIU 2000), with the network resolving his sign ambiguity.
3. **Steady bones.** Every bone is scaled towards its track length by ``steady_blend``, in its direction.

A track length is the median over the track of the lifter's own lengths of that bone (for causal models the
mean so far), left and right averaged.

Detector noise is white from frame to frame, the lifter's error is not: each joint's move is smoothed in time
(a Gaussian of ``move_sigma_s``; one-sided, past frames only, for causal models), and the fitted distance
too. Keypoint scores, where given, weight each joint's move (a joint the detector did not see keeps the
lifter's position). No ground truth and no training: everything comes from the lifter's output and the 2D
input, so it applies to any lifter whose input is camera rays ("focal" and "crop" models).
"""

from __future__ import annotations

import numpy as np

from wildpose.skeleton import H36M_FLIP, H36M_PARENTS

# H36M joint -> COCO keypoint for the joints that are the same point in both (rigs.py maps both from the
# same mocap joints); hips and pelvis are derived from the COCO hips below
_SAME_POINT = ((2, 14), (3, 16), (5, 13), (6, 15), (11, 5), (12, 7), (13, 9), (14, 6), (15, 8), (16, 10))
# COCO hips lie on the body's outline, wider than the hip joints by COCO_HIP_WIDEN of the hip width on each
# side (wildpose.lift.train.rigs): joint = middle +- (left - right) / (2 (1 + 2 * 0.1))
_HIP_SPREAD = 2.4
RAY_JOINTS = np.array([0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16])
# (parent, child) bones whose child slides along its ray to restore the bone's length, from the trunk out
LIMB_BONES = ((1, 2), (2, 3), (4, 5), (5, 6), (11, 12), (12, 13), (14, 15), (15, 16))
_MIRROR_BONE = H36M_FLIP[1:] - 1  # bone (child - 1) -> the same bone on the other side
STEADY_BLEND = 0.5
# step 2's blend: 0.75 for symmetric lifters (re-chosen on the validation subject once step 3 existed:
# 0.5 -> 0.75 helped all three train-only models, 1.0 followed noisy 2D too far); causal lifters keep 0.5,
# where 0.75 did not help (docs/MODEL.md, "Test-time refinement")
BONE_BLEND = 0.75
CAUSAL_BONE_BLEND = 0.5
MOVE_SIGMA_S = 0.1
CAUSAL_MOVE_SIGMA_S = 0.2
_MIN_DEPTH = 0.1  # metres: a fitted distance below this is no fit (a degenerate or mirrored 2D pose)


def h36m_rays(rays: np.ndarray, scores: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 rays (T, 17, 2) -> rays of the Human3.6M joints (T, 17, 2) and their weights (T, 17).

    Joints without a 2D counterpart (spine, thorax, neck, head) get weight 0. ``scores`` (T, 17) COCO keypoint
    scores give the weights (see :func:`score_weights`); None: every counterpart weighs 1.
    """
    rays = np.asarray(rays, np.float64)
    out = np.zeros(rays.shape[:-2] + (17, 2))
    middle = 0.5 * (rays[..., 11, :] + rays[..., 12, :])
    half = (rays[..., 11, :] - rays[..., 12, :]) / _HIP_SPREAD
    out[..., 0, :], out[..., 4, :], out[..., 1, :] = middle, middle + half, middle - half
    w_coco = np.ones(rays.shape[:-1]) if scores is None else score_weights(scores)
    weights = np.zeros(rays.shape[:-2] + (17,))
    weights[..., [0, 1, 4]] = np.minimum(w_coco[..., 11], w_coco[..., 12])[..., None]
    for h, c in _SAME_POINT:
        out[..., h, :] = rays[..., c, :]
        weights[..., h] = w_coco[..., c]
    return out, weights


def score_weights(scores: np.ndarray, low: float = 0.1, high: float = 0.3) -> np.ndarray:
    """Keypoint scores -> weights in [0, 1]: 0 at or below ``low`` (the tracker's ``keypoint_score``, below
    which a point is not trusted), 1 from ``high`` (MoveNet scores visible joints of small people 0.3 and up),
    linear between. NaN (a gap filled by interpolation without a score) counts as ``high``."""
    s = np.nan_to_num(np.asarray(scores, np.float64), nan=high)
    return np.clip((s - low) / (high - low), 0.0, 1.0)


def smooth_time(values: np.ndarray, sigma: float, causal: bool = False) -> np.ndarray:
    """Gaussian smoothing along axis 0 (``sigma`` in frames; edges repeat the end values). ``causal``: the
    half-Gaussian over the current and past frames only, so no output depends on a later frame."""
    if sigma <= 0 or len(values) < 2:
        return values
    if not causal:
        from scipy.ndimage import gaussian_filter1d

        return gaussian_filter1d(values, sigma, axis=0, mode="nearest")
    from scipy.signal import lfilter

    taps = np.exp(-0.5 * (np.arange(int(3 * sigma) + 1) / sigma) ** 2)
    padded = np.concatenate([np.repeat(values[:1], len(taps) - 1, axis=0), values])
    return lfilter(taps / taps.sum(), [1.0], padded, axis=0)[len(taps) - 1:]


def refine_poses(poses: np.ndarray, rays: np.ndarray, fps: float, scores: np.ndarray | None = None, *,
                 move_sigma_s: float | None = None, depth_sigma_s: float = 0.1, bone_blend: float | None = None,
                 causal: bool = False, steady_blend: float = STEADY_BLEND,
                 lengths: np.ndarray | None = None) -> np.ndarray:
    """Refine one track's lifted poses against its 2D keypoints (module docstring).

    Parameters
    ----------
    poses : ndarray, (T, 17, 3)
        Human3.6M-17, metres, camera axes (x right, y down, z forward), as the lifter gives them.
    rays : ndarray, (T, 17, 2)
        The COCO-17 keypoints the poses came from as camera rays: ``(x - cx) / fx``, ``(y - cy) / fy`` of
        undistorted pixels (``wildpose.lift.normalize.normalize_keypoints(..., "focal")``).
    fps : float
        Frames per second of the track (sets the smoothing widths, which are in seconds).
    scores : ndarray, (T, 17), optional
        COCO keypoint scores; weights each joint's move (:func:`score_weights`).
    move_sigma_s, depth_sigma_s : float
        Gaussian smoothing (seconds) of each joint's move and of the fitted distance; 0 turns it off.
        Default for the moves: MOVE_SIGMA_S, or CAUSAL_MOVE_SIGMA_S with ``causal`` (a one-sided filter
        lags, and a wider one trades that lag for less jitter: chosen on the validation subject).
    bone_blend : float
        Step 2: 0: only snap to the rays; 1: restore the limbs' lengths fully along their rays. Default
        BONE_BLEND, or CAUSAL_BONE_BLEND with ``causal``.
    steady_blend : float
        Step 3: every bone scaled towards its track length by this fraction, in its own direction.
        Defaults of all three chosen on the validation subject (docs/MODEL.md).
    causal : bool
        Smooth over past frames only (for causal lifters: no output waits for a later frame).
    lengths : ndarray, (16,) or (T, 16), optional
        The person's bone lengths in metres (Human3.6M bone c - 1 ends at joint c), where known (a measured
        performer); default: estimated from the lifted poses (:func:`track_bone_lengths`).

    Returns
    -------
    ndarray, (T, 17, 3) float32: root-relative (joint 0 exactly 0), camera axes.
    """
    if move_sigma_s is None:
        move_sigma_s = CAUSAL_MOVE_SIGMA_S if causal else MOVE_SIGMA_S
    if bone_blend is None:
        bone_blend = CAUSAL_BONE_BLEND if causal else BONE_BLEND
    r, w = h36m_rays(rays, scores)
    p = np.asarray(poses, np.float64)
    p = p - p[:, :1]
    if lengths is None:
        lengths = track_bone_lengths(p, causal)
    else:
        lengths = np.broadcast_to(np.asarray(lengths, np.float64), (len(p), 16))
    # steps 1-2 once: a second pass lowered exact-2D error on test but raised noisy-2D error (docs/MODEL.md)
    p = _refine_once(p, r, w, lengths, fps, move_sigma_s, depth_sigma_s, bone_blend, causal)
    p = steady_bones(p, lengths, steady_blend)
    return (p - p[:, :1]).astype(np.float32)


def track_bone_lengths(poses: np.ndarray, causal: bool = False) -> np.ndarray:
    """(T, 16) metres: one length per Human3.6M bone (child joint c -> column c - 1) for each frame: the
    median over the track of the ``poses`` (T, 17, 3) lengths, or with ``causal`` the mean over the frames so
    far (a median over the track would wait for its end); left and right averaged (people are symmetric)."""
    from wildpose.quality import bone_lengths

    lifted = bone_lengths(poses)
    if causal:
        lengths = np.cumsum(lifted, axis=0) / np.arange(1.0, len(lifted) + 1.0)[:, None]
    else:
        lengths = np.broadcast_to(np.median(lifted, axis=0), lifted.shape)
    return 0.5 * (lengths + lengths[:, _MIRROR_BONE])


def steady_bones(poses: np.ndarray, lengths: np.ndarray, blend: float) -> np.ndarray:
    """Each bone of ``poses`` (T, 17, 3) scaled towards its track length (``lengths`` (T, 16)) by ``blend``
    (0: unchanged, 1: exactly), keeping its direction; joints are rebuilt from the root outwards."""
    if not blend:
        return poses
    out = poses.copy()
    for child in range(1, 17):  # H36M_PARENTS lists parents before children
        parent = H36M_PARENTS[child]
        bone = poses[:, child] - poses[:, parent]
        norm = np.linalg.norm(bone, axis=-1, keepdims=True)
        scale = 1.0 + blend * (lengths[:, child - 1:child] / np.maximum(norm, 1e-9) - 1.0)
        out[:, child] = out[:, parent] + bone * scale
    return out


def _refine_once(p: np.ndarray, r: np.ndarray, w: np.ndarray, lengths: np.ndarray, fps: float,
                 move_sigma_s: float, depth_sigma_s: float, bone_blend: float, causal: bool) -> np.ndarray:
    """One pass of steps 1 and 2: H36M rays ``r`` (T, 17, 2) and weights ``w`` (T, 17) from h36m_rays,
    ``lengths`` from track_bone_lengths."""
    p = p - p[:, :1]
    a = r[:, RAY_JOINTS] - r[:, :1]  # (T, J, 2): how each joint's position changes with the distance
    b = r[:, RAY_JOINTS] * p[:, RAY_JOINTS, 2:3] - p[:, RAY_JOINTS, :2]
    wj = w[:, RAY_JOINTS, None]
    den = (wj * a * a).sum((1, 2))
    depth = -(wj * a * b).sum((1, 2)) / np.maximum(den, 1e-12)
    fitted = (den > 1e-8) & (depth > _MIN_DEPTH)
    if not fitted.any():
        return p
    # frames without a fit borrow a neighbour's distance (causal: the last one before) and move nothing
    frames = np.arange(len(p))
    if causal:
        last = np.maximum.accumulate(np.where(fitted, frames, -1))
        depth = depth[np.where(last >= 0, last, np.argmax(fitted))]
    else:
        depth = np.interp(frames, frames[fitted], depth[fitted])
    w = w * fitted[:, None]
    depth = smooth_time(depth, depth_sigma_s * fps, causal)
    ray3 = np.concatenate([r, np.ones_like(r[..., :1])], axis=-1)

    # the lifted pose at the fitted distance, its root on the root's ray: the moves are then the pose's own
    # corrections (centimetres), which can be weighted and smoothed, not the pose's place in the image
    start = p + (ray3[:, :1] * depth[:, None, None])
    x = start.copy()
    x[:, RAY_JOINTS] += w[:, RAY_JOINTS, None] * (ray3[:, RAY_JOINTS] * x[:, RAY_JOINTS, 2:3] - x[:, RAY_JOINTS])

    if bone_blend:
        for parent, child in LIMB_BONES:
            length = lengths[:, child - 1]
            z0 = x[:, child, 2]
            ahead = z0 > _MIN_DEPTH  # a joint at or behind the camera has no ray to slide along: it stays
            z0 = np.where(ahead, z0, 1.0)
            ray = x[:, child] / z0[:, None]  # the line through the camera and the joint as it stands
            xp = x[:, parent]
            qa = (ray * ray).sum(-1)
            qb = -2.0 * (ray * xp).sum(-1)
            qc = (xp * xp).sum(-1) - length ** 2
            root = np.sqrt(np.maximum(qb * qb - 4.0 * qa * qc, 0.0))  # no solution: the closest point
            near, far = (-qb - root) / (2.0 * qa), (-qb + root) / (2.0 * qa)
            z = np.where(np.abs(near - z0) < np.abs(far - z0), near, far)
            x[:, child] = ray * (z0 + bone_blend * ahead * w[:, child] * (z - z0))[:, None]

    # the moves, not the rays, are smoothed: the lifter's error changes slowly, the limbs' rays do not
    moved = smooth_time(x - start, move_sigma_s * fps, causal)
    x = start + moved
    shoulders, hips = moved[:, [11, 14]].mean(axis=1), moved[:, [1, 4]].mean(axis=1)
    x[:, [8, 9, 10]] += shoulders[:, None]
    x[:, 7] += 0.5 * (shoulders + hips)
    return x - x[:, :1]
