"""2D input normalisation shared by training and inference (the model's config names the method).

- "screen": the reference's: ``x / w * 2 - 1``, ``y / w * 2 - h / w`` (width-normalised, aspect kept).
- "focal": camera rays, ``(x - w / 2) / f``, ``(y - h / 2) / f``: independent of resolution and,
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


def normalize_keypoints(xy: np.ndarray, image_size: tuple[int, int], method: str,
                        focal_length: float | None = None) -> np.ndarray:
    """Pixels (..., 2) -> the model's input space (..., 2), float32."""
    w, h = float(image_size[0]), float(image_size[1])
    xy = np.asarray(xy, np.float32)[..., :2]
    if method == "screen":
        return (xy / w * 2.0 - np.array([1.0, h / w], np.float32)).astype(np.float32)
    if method == "focal":
        f = focal_length if focal_length is not None else focal_from_fov((w, h))
        return ((xy - np.array([w / 2.0, h / 2.0], np.float32)) / np.float32(f)).astype(np.float32)
    raise ValueError(f"unknown input normalisation {method!r} (expected 'screen' or 'focal')")


def denormalize_keypoints(uv: np.ndarray, image_size: tuple[int, int], method: str,
                          focal_length: float | None = None) -> np.ndarray:
    """Inverse of normalize_keypoints: model space (..., 2) -> pixels."""
    w, h = float(image_size[0]), float(image_size[1])
    uv = np.asarray(uv, np.float32)
    if method == "screen":
        return ((uv + np.array([1.0, h / w], np.float32)) * w / 2.0).astype(np.float32)
    if method == "focal":
        f = focal_length if focal_length is not None else focal_from_fov((w, h))
        return (uv * np.float32(f) + np.array([w / 2.0, h / 2.0], np.float32)).astype(np.float32)
    raise ValueError(f"unknown input normalisation {method!r} (expected 'screen' or 'focal')")
