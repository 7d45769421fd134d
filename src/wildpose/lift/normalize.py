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


# "crop": the focal-normalised rays turned, frame by frame, into a virtual camera that looks straight at the
# person's root (the midpoint of the COCO hips) and scaled to a unit size. A lifter trained on this space does
# not have to learn that a pose looks the same anywhere in the frame, at any distance and through any lens
# (the focal space leaves all three to the network, which on little data it learns slowly), and the
# perspective of an off-centre person (seen obliquely by a wide lens) is undone by the rotation, not
# guessed. The network predicts the root-relative pose in the virtual camera's axes; ``crop_restore`` turns
# it back into the real camera's axes. (After Yu et al., "PCLs: Geometry-aware neural reconstruction of 3D
# pose with perspective crop layers", CVPR 2021, here applied to keypoints rather than pixels.)
COCO_HIPS = (11, 12)


def crop_rotations(root_rays: np.ndarray) -> np.ndarray:
    """Rotations (..., 3, 3) whose rows are the virtual camera's right, down, forward axes in camera axes.

    Forward is the ray through the root; right is perpendicular to it and to the camera's y axis, so the
    virtual camera has no roll and a person centred in the image keeps the identity. Mirroring the image
    (x -> -x) mirrors the result, so flip augmentation stays valid in this space.
    """
    ray = np.concatenate([root_rays, np.ones_like(root_rays[..., :1])], axis=-1).astype(np.float64)
    fwd = ray / np.linalg.norm(ray, axis=-1, keepdims=True)
    right = np.cross(np.array([0.0, 1.0, 0.0]), fwd)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(fwd, right)
    return np.stack([right, down, fwd], axis=-2)


def crop_normalize(rays: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Focal-normalised rays (..., J, 2) of COCO-17 points -> ("crop" inputs (..., J, 2), rotations (..., 3, 3)).

    Each frame's points are rotated into the virtual camera looking at its root, re-projected, and divided
    by their root-mean-square distance from the root (so the input has unit size: distance and focal length
    drop out; the person's shape, including perspective foreshortening, stays).
    """
    rays = np.asarray(rays, np.float64)
    root = rays[..., COCO_HIPS, :].mean(axis=-2)
    rot = crop_rotations(root)
    p = np.concatenate([rays, np.ones_like(rays[..., :1])], axis=-1)
    q = np.einsum("...ij,...nj->...ni", rot, p)
    uv = q[..., :2] / np.maximum(q[..., 2:3], eps)
    uv = uv - uv[..., COCO_HIPS, :].mean(axis=-2, keepdims=True)  # ~0 already; exact for the hips' midpoint
    scale = np.sqrt((uv ** 2).sum(axis=-1).mean(axis=-1))
    uv = uv / np.maximum(scale, eps)[..., None, None]
    return uv.astype(np.float32), rot.astype(np.float32)


def crop_restore(points: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Points (..., J, 3) in the virtual cameras' axes -> the real camera's axes (rot from crop_normalize)."""
    return np.einsum("...ji,...nj->...ni", rot, points).astype(np.float32)
