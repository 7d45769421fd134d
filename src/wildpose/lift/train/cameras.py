"""Virtual static cameras, vectorised over a batch of windows, and the 2D inputs / 3D targets they give.

World axes are the mocap's (metres, Y up). Camera axes: x right, y down, z forward (pinhole, principal point
at the image centre). The camera stays put while the person moves through the window.
"""

from __future__ import annotations

import numpy as np

from wildpose.skeleton import COCO_FLIP, H36M_FLIP

# (width, height) landscape sizes from 360p to 4K; portrait = transposed
IMAGE_SIZES = np.array([[640, 360], [854, 480], [960, 540], [1280, 720], [1920, 1080], [2560, 1440],
                        [3840, 2160], [640, 480], [1440, 1080], [4032, 3024]], dtype=np.float64)


def look_rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """World->camera rotations (B, 3, 3): rows are the camera's right, down, forward axes in world.

    yaw: heading about world +Y (radians, 0 = looking along +Z); pitch > 0 looks down; roll about forward.
    """
    cp, sp = np.cos(pitch), np.sin(pitch)
    fwd = np.stack([cp * np.sin(yaw), -sp, cp * np.cos(yaw)], -1)
    up = np.array([0.0, 1.0, 0.0])
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(fwd, right)
    cr, sr = np.cos(roll)[:, None], np.sin(roll)[:, None]
    right, down = cr * right + sr * down, -sr * right + cr * down
    return np.stack([right, down, fwd], axis=1)


def world_to_camera(points: np.ndarray, rot: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """points (B, ..., 3) world -> camera axes; rot (B, 3, 3), centre (B, 3)."""
    shape = points.shape
    p = points.reshape(shape[0], -1, 3) - centre[:, None, :]
    return np.einsum("bij,bnj->bni", rot, p).reshape(shape)


def project(points_cam: np.ndarray, focal: np.ndarray, image_size: np.ndarray) -> np.ndarray:
    """Pinhole projection: (B, ..., 3) camera-axes metres -> (B, ..., 2) pixels; focal (B,), image_size (B, 2)."""
    b = points_cam.shape[0]
    extra = (1,) * (points_cam.ndim - 2)
    z = np.maximum(points_cam[..., 2:3], 1e-3)
    f = focal.reshape((b,) + extra + (1,))
    c = (image_size / 2.0).reshape((b,) + extra + (2,))
    return points_cam[..., :2] / z * f + c


def backproject(pixels: np.ndarray, depth: np.ndarray, focal: np.ndarray, image_size: np.ndarray) -> np.ndarray:
    """Inverse of project given the depth z: (B, ..., 2) pixels, (B, ...) depths -> (B, ..., 3)."""
    b = pixels.shape[0]
    extra = (1,) * (pixels.ndim - 2)
    f = focal.reshape((b,) + extra + (1,))
    c = (image_size / 2.0).reshape((b,) + extra + (2,))
    xy = (pixels - c) / f * depth[..., None]
    return np.concatenate([xy, depth[..., None]], axis=-1)


def random_cameras(rng: np.random.Generator, root_path: np.ndarray, cfg: dict | None = None) -> dict:
    """Sample one static camera per window that keeps the person mostly in view.

    root_path: (B, T, 3) world root positions over each window. Returns dict with rot (B, 3, 3), centre (B, 3),
    focal (B,) pixels, image_size (B, 2), fov_deg (B,).
    """
    cfg = cfg or {}
    b = root_path.shape[0]
    mid = root_path.mean(axis=1)
    size = IMAGE_SIZES[rng.integers(0, len(IMAGE_SIZES), b)]
    portrait = rng.random(b) < cfg.get("portrait_fraction", 0.3)
    size[portrait] = size[portrait][:, ::-1]
    fov = rng.uniform(*cfg.get("fov_deg", (25.0, 90.0)), b)
    focal = size.max(axis=1) / (2.0 * np.tan(np.radians(fov) / 2.0))
    # a longer lens is used from further away: log-uniform distance, shifted with the field of view
    dist = np.exp(rng.uniform(np.log(2.0), np.log(15.0), b))
    dist = np.clip(dist * np.sqrt(60.0 / fov), 2.0, 15.0)
    azim = rng.uniform(-np.pi, np.pi, b)
    cam_h = rng.uniform(0.5, 2.5, b)
    off = cfg.get("aim_jitter", 0.5)
    jit_h, jit_v = rng.uniform(-off, off, b), rng.uniform(-off, off, b)
    roll = np.radians(np.clip(rng.normal(0.0, 3.0, b), -10.0, 10.0))
    half_h = np.arctan(size[:, 0] / 2.0 / focal)
    half_v = np.arctan(size[:, 1] / 2.0 / focal)
    min_depth = cfg.get("min_depth", 1.5)
    for _ in range(8):
        centre = np.stack([mid[:, 0] + dist * np.sin(azim), cam_h, mid[:, 2] + dist * np.cos(azim)], -1)
        # aim at the window's mean position, shifted so the person is off-centre at times
        to = mid - centre
        yaw = np.arctan2(to[:, 0], to[:, 2]) + jit_h * half_h
        pitch0 = np.arctan2(-(to[:, 1]), np.hypot(to[:, 0], to[:, 2]))
        pitch = np.clip(pitch0 + jit_v * half_v, np.radians(-20.0), np.radians(30.0))
        rot = look_rotation(yaw, pitch, roll)
        # the person may walk towards the camera within the window: back the camera off until every root
        # position stays min_depth in front of it
        depth = world_to_camera(root_path, rot, centre)[..., 2].min(axis=1)
        short = depth < min_depth
        if not short.any():
            break
        dist = np.where(short, dist + (min_depth - depth) + 0.5, dist)
    return dict(rot=rot, centre=centre, focal=focal, image_size=size, fov_deg=fov)


def mirror(inputs_2d: np.ndarray, target_3d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror normalised COCO inputs (..., 17, 2) and H36M camera-axes targets (..., 17, 3) left-right:
    negate x and swap left/right joints. Applying it twice is the identity."""
    x2 = inputs_2d[..., COCO_FLIP, :].copy()
    x2[..., 0] *= -1.0
    y3 = target_3d[..., H36M_FLIP, :].copy()
    y3[..., 0] *= -1.0
    return x2, y3
