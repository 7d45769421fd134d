"""Time bases for formats with a fixed frame rate (C3D, BVH): a variable-frame-rate video's per-frame values are
resampled onto a uniform grid at the video's average rate; a constant-rate video keeps its own frames."""

from __future__ import annotations

import numpy as np

from ..types import TrackRows


def is_uniform(timestamps: np.ndarray, fps: float, tolerance: float = 0.05) -> bool:
    """True when every frame interval is within ``tolerance`` of a frame period (0.05: 5%, jitter of
    millisecond-rounded timestamps)."""
    timestamps = np.asarray(timestamps, np.float64)
    if len(timestamps) < 2 or fps <= 0:
        return True
    return bool(np.all(np.abs(np.diff(timestamps) * fps - 1.0) <= tolerance))


def uniform_grid(timestamps: np.ndarray, fps: float) -> np.ndarray:
    """(K,) float64 seconds: the video's first timestamp, then one frame period at a time up to its last."""
    timestamps = np.asarray(timestamps, np.float64)
    if len(timestamps) == 0:
        return timestamps
    count = int(np.floor((timestamps[-1] - timestamps[0]) * fps + 1e-6)) + 1
    return timestamps[0] + np.arange(count) / fps


def resample(times: np.ndarray, values: np.ndarray, grid: np.ndarray, snap: float | None = None) -> np.ndarray:
    """Linear interpolation of (T, ...) ``values`` at ``times`` onto ``grid``; NaN where the grid time falls
    outside the values' range or next to a NaN sample (a gap stays a gap). A grid time within ``snap`` seconds of
    a sample (default: a quarter of the grid's period) takes that sample as it is, so timestamps rounded to the
    millisecond neither blur the poses nor lose a track's first or last frame to its absent neighbour."""
    times = np.asarray(times, np.float64)
    grid = np.asarray(grid, np.float64)
    if snap is None:
        snap = 0.25 * float(np.median(np.diff(grid))) if len(grid) > 1 else 1e-6
    flat = np.asarray(values, np.float64).reshape(len(times), -1)
    right = np.clip(np.searchsorted(times, grid, side="left"), 1, max(len(times) - 1, 1))
    left = right - 1
    if len(times) == 1:
        out = np.where(np.isclose(grid, times[0])[:, None], flat[[0]], np.nan)
        return out.reshape((len(grid),) + np.shape(values)[1:])
    span = times[right] - times[left]
    w = np.clip((grid - times[left]) / np.where(span > 0, span, 1.0), 0.0, 1.0)[:, None]
    out = flat[left] * (1 - w) + flat[right] * w  # NaN on either side propagates
    outside = (grid < times[0] - 1e-9) | (grid > times[-1] + 1e-9)
    out[outside] = np.nan
    nearest = np.where(np.abs(times[left] - grid) <= np.abs(times[right] - grid), left, right)
    on_sample = np.abs(times[nearest] - grid) <= snap
    out[on_sample] = flat[nearest[on_sample]]
    return out.reshape((len(grid),) + np.shape(values)[1:])


def frame_times(rows: TrackRows, fps: float) -> tuple[np.ndarray, bool]:
    """The output's frame times and whether they are the video's own frames (False: a resampled grid)."""
    if is_uniform(rows.timestamps, fps):
        return np.asarray(rows.timestamps, np.float64), True
    return uniform_grid(rows.timestamps, fps), False


def track_on_times(rows: TrackRows, values: np.ndarray, p: int, times: np.ndarray, own_frames: bool) -> np.ndarray:
    """Track ``p``'s per-row ``values`` as (K, ...) over ``times`` (from ``frame_times``), NaN where absent."""
    dense = rows.dense(values, p)
    if own_frames:
        return dense
    return resample(rows.timestamps, dense, times).astype(dense.dtype, copy=False)
