"""2D input normalisation shared by training and inference (the model's config names the method).

- "screen": the reference's: ``x / w * 2 - 1``, ``y / w * 2 - h / w`` (width-normalised, aspect kept).
- "focal": camera rays, ``(x - cx) / fx``, ``(y - cy) / fy`` (principal point default: the image centre
  w / 2, h / 2; fx = fy = f for square pixels): independent of resolution and,
  when the focal length f (pixels) is known, of the lens. Unknown f defaults to a horizontal field of
  view of DEFAULT_FOV_DEG across the longer image side (phone main cameras are 65-70 degrees, webcams
  55-70, so 60 is the middle of what people film with).
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_FOV_DEG = 60.0


def focal_from_fov(image_size: tuple[int, int], fov_deg: float = DEFAULT_FOV_DEG) -> float:
    """Focal length in pixels for a field of view (degrees) across the longer image side."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg: expected (0, 180) degrees, got {fov_deg}")
    return max(image_size) / (2.0 * math.tan(math.radians(fov_deg) / 2.0))


def camera_arrays(image_size: tuple[int, int], focal_length: float | tuple[float, float] | None = None,
                  principal_point: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(fx, fy) and (cx, cy) as float32 (2,) arrays, with this module's defaults filled in.

    ``focal_length``: pixels, a float (square pixels) or (fx, fy); None: DEFAULT_FOV_DEG across the longer
    side. ``principal_point``: (cx, cy) pixels; None: the image centre (w / 2, h / 2).
    """
    w, h = float(image_size[0]), float(image_size[1])
    if focal_length is None:
        f = focal_from_fov((w, h))
        focal = (f, f)
    elif np.ndim(focal_length) == 0:
        focal = (float(focal_length), float(focal_length))
    else:
        focal = tuple(float(v) for v in focal_length)
        if len(focal) != 2:
            raise ValueError(f"focal_length: expected a number of pixels or (fx, fy), got {focal_length!r}")
    centre = (w / 2.0, h / 2.0) if principal_point is None else tuple(float(v) for v in principal_point)
    if len(centre) != 2:
        raise ValueError(f"principal_point: expected (cx, cy) in pixels, got {principal_point!r}")
    return np.array(focal, np.float32), np.array(centre, np.float32)


def normalize_keypoints(xy: np.ndarray, image_size: tuple[int, int], method: str,
                        focal_length: float | tuple[float, float] | None = None,
                        principal_point: tuple[float, float] | None = None) -> np.ndarray:
    """Pixels (..., 2) -> the model's input space (..., 2), float32.

    "focal" uses ``focal_length`` (a float, or (fx, fy) for non-square pixels) and ``principal_point``
    (default: the image centre); "screen", the reference's, has no camera and ignores both.
    """
    w, h = float(image_size[0]), float(image_size[1])
    xy = np.asarray(xy, np.float32)[..., :2]
    if method == "screen":
        return (xy / w * 2.0 - np.array([1.0, h / w], np.float32)).astype(np.float32)
    if method == "focal":
        focal, centre = camera_arrays((w, h), focal_length, principal_point)
        return ((xy - centre) / focal).astype(np.float32)
    raise ValueError(f"unknown input normalisation {method!r} (expected 'screen' or 'focal')")


def denormalize_keypoints(uv: np.ndarray, image_size: tuple[int, int], method: str,
                          focal_length: float | tuple[float, float] | None = None,
                          principal_point: tuple[float, float] | None = None) -> np.ndarray:
    """Inverse of normalize_keypoints: model space (..., 2) -> pixels."""
    w, h = float(image_size[0]), float(image_size[1])
    uv = np.asarray(uv, np.float32)
    if method == "screen":
        return ((uv + np.array([1.0, h / w], np.float32)) * w / 2.0).astype(np.float32)
    if method == "focal":
        focal, centre = camera_arrays((w, h), focal_length, principal_point)
        return (uv * focal + centre).astype(np.float32)
    raise ValueError(f"unknown input normalisation {method!r} (expected 'screen' or 'focal')")
