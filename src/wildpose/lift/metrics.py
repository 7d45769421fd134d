"""3D pose error metrics (numpy only): MPJPE, P-MPJPE, N-MPJPE, MPJVE.

All take predictions and ground truth of the same shape (..., J, 3) in the same units (results are in those
units: multiply metres by 1000 for mm) and average over every joint of every pose.
"""

from __future__ import annotations

import numpy as np


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim < 2 or pred.shape[-1] != 3:
        raise ValueError(f"pred and gt: expected equal shapes (..., J, 3), got {pred.shape} and {gt.shape}")
    return pred, gt


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error (protocol 1): mean Euclidean distance, no alignment."""
    pred, gt = _check(pred, gt)
    return float(np.linalg.norm(pred - gt, axis=-1).mean())


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Align each pose of pred (..., J, 3) to gt by the similarity transform (rotation, uniform scale,
    translation) minimising squared error (Umeyama); reflections are excluded."""
    pred, gt = _check(pred, gt)
    mu_p, mu_g = pred.mean(axis=-2, keepdims=True), gt.mean(axis=-2, keepdims=True)
    p, g = pred - mu_p, gt - mu_g
    cov = np.swapaxes(p, -1, -2) @ g  # (..., 3, 3)
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))
    s = s.copy()
    s[..., -1] *= d
    u = u.copy()
    u[..., :, -1] *= d[..., None]
    rot = u @ vt  # maps p onto g: p @ rot
    var_p = (p ** 2).sum(axis=(-1, -2))
    scale = s.sum(axis=-1) / np.maximum(var_p, 1e-12)
    return scale[..., None, None] * (p @ rot) + mu_g


def p_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after per-pose Procrustes alignment with scale (protocol 2)."""
    pred, gt = _check(pred, gt)
    return mpjpe(procrustes_align(pred, gt), gt)


def n_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after per-pose optimal uniform scaling of pred (least squares), no rotation."""
    pred, gt = _check(pred, gt)
    num = (pred * gt).sum(axis=(-1, -2), keepdims=True)
    den = np.maximum((pred * pred).sum(axis=(-1, -2), keepdims=True), 1e-12)
    return mpjpe(pred * (num / den), gt)


def mpjve(pred: np.ndarray, gt: np.ndarray, axis: int = 0) -> float:
    """Mean per-joint velocity error: MPJPE of the frame-to-frame differences along ``axis`` (time).
    Units per frame (multiply by fps for per-second)."""
    pred, gt = _check(pred, gt)
    if pred.shape[axis] < 2:
        raise ValueError(f"mpjve: need at least 2 frames along axis {axis}, got {pred.shape[axis]}")
    return mpjpe(np.diff(pred, axis=axis), np.diff(gt, axis=axis))
