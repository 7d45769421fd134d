"""2D keypoint tracks -> 3D poses with the temporal convolutional lifter (numpy inference, no torch)."""

from __future__ import annotations

import functools
import math
import os

import numpy as np

from wildpose.lift.model import TemporalModel
from wildpose.lift.normalize import crop_normalize, crop_restore, normalize_keypoints
from wildpose.lift.weights import load_lifter, save_lifter

__all__ = ["lift", "run_temporal_model", "TemporalModel", "load_lifter", "save_lifter", "resample"]


@functools.lru_cache(maxsize=1)
def _default_lifter() -> TemporalModel:
    # loading checks a sha256 and folds batch norm: once per process is enough
    return load_lifter(None)


def resample(values: np.ndarray, times: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Linear interpolation in time of every coordinate; times outside ``times`` take the edge value.

    Parameters
    ----------
    values : ndarray, (T, ...)
    times : ndarray, (T,)
        Seconds, strictly increasing.
    new_times : ndarray, (N,)
        Seconds.

    Returns
    -------
    ndarray, (N, ...) float32
    """
    values = np.asarray(values, np.float32)
    times = np.asarray(times, np.float64)
    new_times = np.asarray(new_times, np.float64)
    if len(times) == 1:
        return np.repeat(values, len(new_times), axis=0)
    left = np.clip(np.searchsorted(times, new_times, side="right") - 1, 0, len(times) - 2)
    frac = np.clip((new_times - times[left]) / (times[left + 1] - times[left]), 0.0, 1.0)
    frac = frac.astype(np.float32).reshape((-1,) + (1,) * (values.ndim - 1))
    return values[left] * (1.0 - frac) + values[left + 1] * frac


def check_timestamps(timestamps: np.ndarray | None, n_frames: int, fps: float) -> np.ndarray:
    """(n_frames,) float64 seconds: ``timestamps`` checked (finite, strictly increasing), or arange / fps."""
    if timestamps is None:
        return np.arange(n_frames, dtype=np.float64) / fps
    times = np.asarray(timestamps, np.float64)
    if times.shape != (n_frames,):
        raise ValueError(f"timestamps: expected shape ({n_frames},) to match keypoints_2d, got {times.shape}")
    if not np.all(np.isfinite(times)):
        raise ValueError("timestamps: contains NaN or infinity")
    if n_frames > 1 and not np.all(np.diff(times) > 0):
        raise ValueError("timestamps: must be strictly increasing (seconds)")
    return times


def _pair(value, name: str, expected: str, scalar: bool) -> tuple[float, float]:
    """A finite (a, b) from a pair (or, with ``scalar``, one number used twice); ValueError naming ``name``."""
    try:
        pair = (float(value),) * 2 if scalar and np.ndim(value) == 0 else tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected {expected}, got {value!r}") from None
    if len(pair) != 2 or not all(math.isfinite(v) for v in pair):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return pair


def run_temporal_model(model: TemporalModel | str | os.PathLike, keypoints_2d: np.ndarray,
                       image_size: tuple[int, int], fps: float,
                       focal_length: float | tuple[float, float] | None = None,
                       timestamps: np.ndarray | None = None, flip: bool = True,
                       principal_point: tuple[float, float] | None = None) -> np.ndarray:
    """Run any temporal model (the pose lifter, the trajectory model) on one person's pixel track.

    Checks the arguments, normalises the keypoints as the model was trained, resamples the track to the
    model's frame rate and the outputs back to the input's timestamps. Arguments as for ``lift``.

    Returns
    -------
    ndarray, (T, J_out, 3) float32: the model's raw output per input frame.
    """
    if not isinstance(model, TemporalModel):
        model = load_lifter(model)

    kp = np.asarray(keypoints_2d)
    if kp.ndim != 3 or kp.shape[1] != model.in_joints or kp.shape[2] not in (2, 3) or kp.shape[0] < 1:
        raise ValueError(f"keypoints_2d: expected shape (T >= 1, {model.in_joints}, 2 or 3), got {kp.shape}")
    xy = kp[..., :2].astype(np.float32)
    if not np.all(np.isfinite(xy)):
        bad = np.flatnonzero(~np.isfinite(xy).all(axis=(1, 2)))
        raise ValueError(f"keypoints_2d: NaN or infinity in {len(bad)} frame(s) (first: {bad[0]}); one person's "
                         "track must be complete: fill gaps before lifting")
    try:
        width, height = (float(v) for v in image_size)
    except (TypeError, ValueError):
        raise ValueError(f"image_size: expected (width, height) in pixels, got {image_size!r}") from None
    if not (width > 0 and height > 0 and math.isfinite(width) and math.isfinite(height)):
        raise ValueError(f"image_size: expected positive (width, height), got {image_size!r}")
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise ValueError(f"fps: expected a number of frames per second, got {fps!r}") from None
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive number of frames per second, got {fps!r}")
    if focal_length is not None:
        focal = _pair(focal_length, "focal_length", "a positive number of pixels or (fx, fy)", scalar=True)
        if not all(f > 0 for f in focal):
            raise ValueError(f"focal_length: expected a positive number of pixels or (fx, fy), got {focal_length!r}")
    if principal_point is not None:
        _pair(principal_point, "principal_point", "(cx, cy) in pixels", scalar=False)

    n_frames = kp.shape[0]
    times = check_timestamps(timestamps, n_frames, fps)
    crop = model.input_normalisation == "crop"
    inputs = normalize_keypoints(xy, (width, height), "focal" if crop else model.input_normalisation,
                                 focal_length, principal_point)
    if crop:
        # rotations of the input's own frames: outputs are brought back to camera axes after resampling
        inputs, rotations = crop_normalize(inputs)

    # the model only knows motion at its training frame rate: resample the track onto its time grid
    period = 1.0 / model.fps
    n_grid = int(math.ceil((times[-1] - times[0]) / period - 1e-6)) + 1
    grid = times[0] + np.arange(n_grid) * period
    same_grid = n_grid == n_frames and np.allclose(grid, times, rtol=0.0, atol=1e-3 * period)
    if not same_grid:
        inputs = resample(inputs, times, grid)
    outputs = model.predict(inputs, flip=flip)
    if not same_grid:
        outputs = resample(outputs, grid, times)
    if crop:
        outputs = crop_restore(outputs, rotations)
    return np.ascontiguousarray(outputs, np.float32)


def lift(keypoints_2d: np.ndarray, image_size: tuple[int, int], fps: float,
         focal_length: float | tuple[float, float] | None = None,
         model: TemporalModel | str | os.PathLike | None = None, timestamps: np.ndarray | None = None,
         flip: bool = True, principal_point: tuple[float, float] | None = None, refine: bool = True) -> np.ndarray:
    """Lift one person's 2D keypoint track to 3D poses.

    The track is normalised the way the model was trained ("screen", "focal" or "crop"), resampled in time to the
    model's frame rate (linear interpolation per coordinate on a uniform grid covering the track's time
    span), lifted, and resampled back to the input's timestamps, so the output has one pose per input frame.
    Then (``refine``) the poses are pulled onto the keypoints' camera rays and towards constant bone lengths
    (``wildpose.lift.refine``; "focal" and "crop" models, whose inputs are camera rays).

    Parameters
    ----------
    keypoints_2d : ndarray, (T, 17, 2) or (T, 17, 3)
        COCO-17 keypoints, pixels of the displayed frame (x right, y down); a third (score) column is
        ignored. No NaN: fill gaps first (track.py does). For a lens with distortion, pass keypoints
        undistorted first (``wildpose.camera.undistort_keypoints``).
    image_size : (width, height)
        Pixels.
    fps : float
        The input's frame rate (frames/s); gives the timestamps when ``timestamps`` is None.
    focal_length : float or (fx, fy), optional
        Pixels; used by "focal" models (default: a 60-degree field of view across the longer side).
        A pair for non-square pixels.
    model : TemporalModel, path or name, optional
        Default: the shipped lifter (loaded once per process). A path (``NAME.safetensors``, ``NAME.json`` or
        the stem) or a shipped model's name (``"causal"``) is loaded on each call: load it once with
        ``load_lifter`` to lift many tracks.
    timestamps : ndarray, (T,), optional
        Seconds, strictly increasing (variable frame rate video); default ``arange(T) / fps``.
    flip : bool
        Test-time flip augmentation (about twice the compute, slightly better poses).
    principal_point : (cx, cy), optional
        Pixels; used by "focal" models (default: the image centre, (width / 2, height / 2)).
    refine : bool
        Test-time refinement against the keypoints (``wildpose.lift.refine.refine_poses``; keypoint scores,
        where given, weight it). On held-out mocap it takes the shipped lifter's MPJPE from 59.8 to 52.3 mm
        with exact 2D and from 62.5 to 58.4 mm with noisy 2D (docs/MODEL.md). A causal model is refined
        causally.

    Returns
    -------
    ndarray, (T, J_out, 3) float32
        Human3.6M-17 joints (J_out = 17 for our models), metres, camera axes (x right, y down,
        z forward), root-relative: joint 0 is exactly 0.

    Raises
    ------
    ValueError
        naming the argument, for wrong shapes, NaN keypoints, a non-positive fps, image size or focal
        length, or a non-finite principal point.
    ModelError
        if the default model cannot be loaded.
    """
    if model is None:
        model = _default_lifter()
    elif not isinstance(model, TemporalModel):  # a path or a shipped model's name
        model = load_lifter(model)
    poses = run_temporal_model(model, keypoints_2d, image_size, fps, focal_length=focal_length,
                               timestamps=timestamps, flip=flip, principal_point=principal_point)
    if refine and model.input_normalisation in ("focal", "crop") and poses.shape[1] == 17:
        from wildpose.lift.refine import refine_poses

        kp = np.asarray(keypoints_2d, np.float32)
        rays = normalize_keypoints(kp[..., :2], tuple(image_size), "focal", focal_length, principal_point)
        times = check_timestamps(timestamps, len(kp), fps)
        rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float(fps)
        poses = refine_poses(poses, rays, rate, kp[..., 2] if kp.shape[2] == 3 else None, causal=model.causal)
    poses[:, 0, :] = 0.0
    return poses
