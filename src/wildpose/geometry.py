"""Small numeric helpers shared by stages: box overlap (detection, tracking) and runs of frames (lifting)."""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in ``a`` with every box in ``b``.

    Parameters
    ----------
    a : (M, >=4) or (>=4,) array, x1, y1, x2, y2 pixels (further columns ignored)
    b : (N, >=4) array

    Returns
    -------
    (M, N) float64 in [0, 1]; 0 where a box has no area.
    """
    a = np.atleast_2d(np.asarray(a, np.float64))[:, None, :4]  # a single box (4,) counts as (1, 4)
    b = np.atleast_2d(np.asarray(b, np.float64))[None, :, :4]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) index ranges where the 1-D boolean ``mask`` is True, in order."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.asarray(mask).astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))
