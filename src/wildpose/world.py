"""Where people are: camera-space root trajectories, and a world frame (y up, feet on y = 0) for a static camera.

The pose lifter gives root-relative joints. ``estimate_trajectory`` runs the trajectory model (a temporal
convolutional network like the lifter, with one output joint: the root's position in camera space, metres) on
one person's 2D track; ``fit_root`` is the geometric alternative, the root that best reprojects a lifted pose
onto its keypoints. ``align_world`` takes everyone's absolute camera-space joints over a clip from a static
camera and finds the up direction and the floor: the average body axis of upright people gives a first up
direction, then the plane through the lower ankle of every pose (one offset per person, since each person's
depth carries its own scale error) refines it where the feet spread over the floor, helped a little by the
planes through the camera centre and each upright person's 2D body axis (they meet in the vertical).
``align_world`` assumes a static camera (a panning or tilting camera moves the floor in camera space);
``locate_people`` takes the rotations of a turning camera (``wildpose.camera_motion``) and first brings every
frame into the first frame's camera axes. The output is in world
axes: x right (horizontal, along the (first frame's) camera's right), y up, z towards the camera (right-handed; the same
orientation as the render's 3D view), metres, the floor at y = 0 and the camera above the origin.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wildpose.camera import CameraIntrinsics
from wildpose.errors import ModelError
from wildpose.lift.model import TemporalModel
from wildpose.lift import check_timestamps
from wildpose.types import TrackRows
from wildpose.lift.normalize import camera_arrays

log = logging.getLogger(__name__)

TRAJECTORY_MODEL = "trajectory"
ANKLE_HEIGHT = 0.08  # metres from the floor to the ankle joint centre of a standing adult
_PELVIS, _R_ANKLE, _L_ANKLE, _THORAX = 0, 3, 6, 8
# the world alignment reads four joints only: it copies those (not whole poses) to float64, in this order
_KEY_JOINTS = np.array([_PELVIS, _R_ANKLE, _L_ANKLE, _THORAX])
_K_PELVIS, _K_R_ANKLE, _K_L_ANKLE, _K_THORAX = 0, 1, 2, 3
_CHUNK_ROWS = 8192  # rows transformed at a time: float64 temporaries stay a few MB however long the video
# COCO keypoint -> the H36M joint at the same place (limbs; the COCO hips are near the H36M hips)
_COCO_TO_H36M = np.array([[5, 11], [6, 14], [7, 12], [8, 15], [9, 13], [10, 16], [11, 4], [12, 1], [13, 5],
                          [14, 2], [15, 6], [16, 3]])


def default_trajectory_path() -> Path:
    """The shipped trajectory model: ``wildpose/models/trajectory.safetensors`` (+ ``.json``)."""
    return Path(str(importlib.resources.files("wildpose") / "models" / f"{TRAJECTORY_MODEL}.safetensors"))


def load_trajectory_model(path: str | os.PathLike | None = None) -> TemporalModel:
    """Load a trajectory model (a lifter file with ``out_joints`` 1, ``out_layout`` "root").

    Raises
    ------
    ModelError
        naming the file, if it cannot be loaded (see ``wildpose.lift.load_lifter``) or is not a root model.
    """
    from wildpose.lift.weights import load_lifter, model_paths

    target = default_trajectory_path() if path is None else path
    model = load_lifter(target)
    if model.out_joints != 1 or model.config.get("out_layout") != "root":
        raise ModelError(f"not a trajectory model (out_joints {model.out_joints}, out_layout "
                         f"{model.config.get('out_layout')!r}; expected 1, 'root')", model_paths(target)[1])
    return model


@functools.lru_cache(maxsize=1)
def _default_model() -> TemporalModel:
    return load_trajectory_model(None)



def estimate_trajectory(keypoints_2d: np.ndarray, image_size: tuple[int, int], fps: float,
                        timestamps: np.ndarray | None = None, focal_length: float | tuple[float, float] | None = None,
                        model: TemporalModel | str | os.PathLike | None = None, flip: bool = True,
                        principal_point: tuple[float, float] | None = None) -> np.ndarray:
    """One person's root (pelvis) position in camera space, per frame, from their 2D track.

    Normalised and resampled in time exactly as ``wildpose.lift.lift`` does (the model runs at its own
    frame rate; the output is resampled back to the input's timestamps).

    Parameters
    ----------
    keypoints_2d : ndarray, (T, 17, 2) or (T, 17, 3)
        COCO-17 pixels of the displayed frame; a score column is ignored. No NaN (fill gaps first).
    image_size : (width, height)
        Pixels.
    fps : float
        Frames/s; gives the timestamps when ``timestamps`` is None.
    timestamps : ndarray, (T,), optional
        Seconds, strictly increasing.
    focal_length : float or (fx, fy), optional
        Pixels; default a 60-degree field of view across the longer side. Depth is proportional to it: with
        a wrong focal length every distance is off by the same factor (f_used / f_true).
    model : TemporalModel or path, optional
        A trajectory model; default the shipped ``trajectory.safetensors`` (loaded once per process).
    flip : bool
        Also run on the mirror image and average (x un-mirrored).
    principal_point : (cx, cy), optional
        Pixels; default the image centre.

    Returns
    -------
    ndarray, (T, 3) float32
        Root position, metres, camera axes (x right, y down, z forward).

    Raises
    ------
    ValueError
        naming the argument, for wrong shapes, NaN keypoints, a bad fps, image size or timestamps.
    ModelError
        if the model cannot be loaded or is not a trajectory model.
    """
    from wildpose.lift import run_temporal_model

    if model is None:
        model = _default_model()
    elif not isinstance(model, TemporalModel):
        model = load_trajectory_model(model)
    # flip averaging mirrors a root model's output by negating x (TemporalModel.predict knows the "root" layout)
    root = run_temporal_model(model, keypoints_2d, image_size, fps, focal_length=focal_length,
                              timestamps=timestamps, flip=flip, principal_point=principal_point)
    return np.ascontiguousarray(root[:, 0], np.float32)


def fit_root(poses_3d: np.ndarray, keypoints_2d: np.ndarray, image_size: tuple[int, int],
             focal_length: float | tuple[float, float] | None = None, min_score: float = 0.2,
             principal_point: tuple[float, float] | None = None) -> np.ndarray:
    """The root position that makes a root-relative 3D pose reproject best onto its 2D keypoints.

    For each frame, the least-squares solution of ``(P_j + R)_xy = u_j (P_j + R)_z`` over the 12 limb joints
    (u_j: focal-normalised keypoints), which is linear in the root R. The depth inherits the lifter's
    scale assumption (adult proportions). A geometric baseline for the trajectory model.

    Parameters
    ----------
    poses_3d : (T, 17, 3) H36M metres, camera axes, root-relative.
    keypoints_2d : (T, 17, 2|3) COCO pixels (a score column below ``min_score`` drops that point).
    image_size, focal_length, principal_point : as for ``estimate_trajectory``.

    Returns
    -------
    (T, 3) float32 metres, camera axes; NaN where fewer than 4 points were usable.
    """
    kp = np.asarray(keypoints_2d, np.float64)
    pose = np.asarray(poses_3d, np.float64)[:, _COCO_TO_H36M[:, 1]]  # (T, 12, 3)
    focal, centre = camera_arrays(tuple(float(v) for v in image_size), focal_length, principal_point)
    uv = (kp[:, _COCO_TO_H36M[:, 0], :2] - centre) / focal  # (T, 12, 2)
    ok = np.isfinite(uv).all(-1) & np.isfinite(pose).all(-1)
    if kp.shape[-1] == 3:
        ok &= ~(kp[:, _COCO_TO_H36M[:, 0], 2] < min_score)
    w = ok.astype(np.float64)
    uv, pose = np.where(ok[..., None], uv, 0.0), np.where(ok[..., None], pose, 0.0)
    # two equations per joint, unknowns (X, Y, Z): X - u Z = u P_z - P_x and Y - v Z = v P_z - P_y
    T, J = uv.shape[:2]
    A = np.zeros((T, J, 2, 3))
    A[..., 0, 0] = 1.0
    A[..., 1, 1] = 1.0
    A[..., :, 2] = -uv
    b = uv * pose[..., 2:3] - pose[..., :2]
    A = (A * w[..., None, None]).reshape(T, 2 * J, 3)
    b = (b * w[..., None]).reshape(T, 2 * J)
    ata = np.einsum("tki,tkj->tij", A, A)
    atb = np.einsum("tki,tk->ti", A, b)
    out = np.full((T, 3), np.nan)
    good = ok.sum(1) >= 4
    if good.any():
        out[good] = np.linalg.solve(ata[good], atb[good][..., None])[..., 0]
    return out.astype(np.float32)


# --------------------------------------------------------------------------------------------- world frame

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _body_up(joints: np.ndarray, max_tilt_deg: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Robust mean of the body axes (mid-ankle -> thorax) of upright poses; camera axes. (M, 4, 3) key joints
    (``_KEY_JOINTS``) -> (3,).

    Only axes within ``max_tilt_deg`` of the camera's up (-y) count at first (a camera is roughly upright;
    lying or bending people are not a vertical reference), then those within 25 degrees of their mean.
    """
    axis = _unit(joints[:, _K_THORAX] - 0.5 * (joints[:, _K_R_ANKLE] + joints[:, _K_L_ANKLE]))
    up = np.array([0.0, -1.0, 0.0])
    upright = np.zeros(len(axis), bool)
    for limit in (max_tilt_deg, 25.0, 15.0):
        keep = axis @ up >= math.cos(math.radians(limit))
        if keep.sum() < 1:
            break
        upright = keep
        up = _unit(axis[keep].mean(0))
    return up, upright


def _ray_planes(joints: np.ndarray) -> np.ndarray:
    """(M, 4, 3) key joints -> (3, 3): mean of m m^T, m the normal of the plane through the camera centre and the 2D
    body axis (the rays to the mid-ankle and the thorax). An upright body's vertical lies in that plane
    whatever the lifter got wrong about depth: these planes meet in the vertical direction (the vertical
    vanishing point), which constrains the up direction with the image's own evidence."""
    m = np.cross(0.5 * (joints[:, _K_R_ANKLE] + joints[:, _K_L_ANKLE]), joints[:, _K_THORAX])
    m = _unit(m)
    return (m[:, :, None] * m[:, None, :]).mean(0) if len(m) else np.zeros((3, 3))


def _floor_normal(points: np.ndarray, person: np.ndarray, prior: np.ndarray, prior_weight: float,
                  weights: np.ndarray, extra: np.ndarray, between_weight: float = 0.0) -> np.ndarray:
    """Normal of planes (one offset per person) through ``points`` (M, 3), pulled towards ``prior``: the
    eigenvector of the smallest eigenvalue of (pooled within-person covariance + extra - w prior prior^T)."""
    cov = np.zeros((3, 3))
    total = 0.0
    means, counts = [], []
    for p in np.unique(person):
        sel = person == p
        wp = weights[sel]
        if wp.sum() <= 0:
            continue
        mu = (points[sel] * wp[:, None]).sum(0) / wp.sum()
        d = points[sel] - mu
        cov += (d * wp[:, None]).T @ d
        total += wp.sum()
        means.append(mu)
        counts.append(wp.sum())
    if len(means) > 1 and between_weight > 0:
        # where people stand relative to each other is evidence too, discounted for each one's depth scale error
        means, counts = np.array(means), np.array(counts)
        d = means - (means * counts[:, None]).sum(0) / counts.sum()
        cov += between_weight * (d * counts[:, None]).T @ d
    cov /= max(total, 1e-12)
    vals, vecs = np.linalg.eigh(cov + extra - prior_weight * np.outer(prior, prior))
    n = vecs[:, 0]
    return n if n @ prior >= 0 else -n


def align_world(poses_cam: np.ndarray, present: np.ndarray | None = None, *, person: np.ndarray | None = None,
                prior_weight: float = 0.2, ray_weight: float = 0.2, between_weight: float = 0.25,
                ankle_height: float = ANKLE_HEIGHT, equalise_scale: bool = True,
                both_feet_tol: float = 0.03, num_people: int | None = None,
                out: np.ndarray | None = None, max_fit_rows: int = 100_000) -> tuple[np.ndarray, dict]:
    """Turn absolute camera-space poses from a static camera into a world frame: y up, the floor at y = 0.

    Parameters
    ----------
    poses_cam : ndarray, (P, T, 17, 3), or (N, 17, 3) rows with ``person``
        H36M joints, metres, camera axes (x right, y down, z forward), absolute (root-relative pose + root
        trajectory); NaN where absent.
    present : ndarray, (P, T) (or (N,)) bool, optional
        Frames (rows) to use; default: where every joint is finite.
    person : ndarray, (N,) int, optional
        For rows (the sparse layout of ``wildpose.types.TrackRows``): the person (0..P-1) of each row.
    num_people : int, optional
        P, for rows (default: the largest ``person`` + 1).
    out : ndarray, (N, 17, 3) float32, optional
        For rows: where to write the world poses; may be ``poses_cam`` itself (each chunk of rows is read
        before it is written), which saves a copy of every pose on long videos.
    max_fit_rows : int
        At most this many poses (a regular subsample of every person's frames) are used to fit the up
        direction and the floor; every pose is then moved into the world.
    prior_weight : float
        Square metres: how strongly the body-axis up direction holds against the floor-plane fit (the fit
        wins along directions in which the feet spread more than about sqrt(prior_weight) metres), for
        one person; divided by the number of people (each is independent evidence about the floor).
    ray_weight : float
        Square metres: weight of the image's own evidence for the vertical (the planes through the camera
        centre and each upright person's 2D body axis meet in the vertical direction; see ``_ray_planes``).
        It does not depend on the lifter's depth, but leaning bodies bias it: measured best at 0.2.
        Also divided by the number of people.
    between_weight : float
        How much the spread of different people's feet (person means) counts in the floor fit, relative to
        each person's own feet (1: as much; 0: not at all, as each person's offset may be a depth-scale error).
    ankle_height : float
        Metres between the floor and the ankle joints.
    both_feet_tol : float
        Metres: the higher ankle also counts as a floor point where it is at most this much above the lower
        (both feet down), which adds the feet's lateral spread to the floor fit.
    equalise_scale : bool
        With several people, scale each person's root positions about the camera (which keeps their 2D
        projection) so that everybody stands on the same floor: each person's depth carries its own scale
        error (body size), which shows as feet above or below the common floor. Limited to 0.67-1.5x.

    Returns
    -------
    poses_world : ndarray, float32, the shape of ``poses_cam``
        Metres, world axes: x right, y up, z towards the camera; the floor at y = 0; NaN where absent.
    camera : dict
        ``rotation`` (3, 3) world-from-camera (world = rotation @ camera-axes vector + position),
        ``position`` (3,) the camera in the world (0, height, 0), ``height`` metres above the floor,
        ``pitch_deg`` (> 0 looking down), ``roll_deg`` (about the optical axis; > 0 when the camera's x axis
        points below the horizon, so that the horizon in the image rises to the right),
        ``up_camera`` (3,) the world's up in camera axes, ``person_scale`` (P,) the factors applied,
        ``ankle_height``, ``frames_used``.

    Raises
    ------
    ValueError
        if ``poses_cam`` has the wrong shape or no complete pose.
    """
    poses = np.asarray(poses_cam)
    if person is None:
        if poses.ndim != 4 or poses.shape[2:] != (17, 3):
            raise ValueError(f"poses_cam: expected shape (P, T, 17, 3) (or (N, 17, 3) rows with person=), "
                             f"got {poses.shape}")
        P, T = poses.shape[:2]
        if present is not None:
            present = np.asarray(present, bool)
            if present.shape != (P, T):
                raise ValueError(f"present: expected shape ({P}, {T}), got {present.shape}")
            present = present.reshape(-1)
        # the dense layout is rows of a person-major order: the same arithmetic as the sparse one
        world, camera = align_world(poses.reshape(P * T, 17, 3), present,
                                    person=np.repeat(np.arange(P), T), prior_weight=prior_weight,
                                    ray_weight=ray_weight, between_weight=between_weight,
                                    ankle_height=ankle_height, equalise_scale=equalise_scale,
                                    both_feet_tol=both_feet_tol, num_people=P, max_fit_rows=max_fit_rows)
        return world.reshape(P, T, 17, 3), camera
    person = np.asarray(person, np.int64).reshape(-1)
    if poses.ndim != 3 or poses.shape[1:] != (17, 3) or len(person) != len(poses):
        raise ValueError(f"poses_cam: expected shape (N, 17, 3) rows, one person index each, got {poses.shape} "
                         f"and {person.shape}")
    P = int(num_people) if num_people is not None else (int(person.max()) + 1 if len(person) else 0)
    ok = np.isfinite(poses).all((-1, -2))
    if present is not None:
        present = np.asarray(present, bool).reshape(-1)
        if present.shape != ok.shape:
            raise ValueError(f"present: expected shape {ok.shape}, got {present.shape}")
        ok &= present
    if not ok.any():
        raise ValueError("poses_cam: no frame has a complete pose to align")
    rows = np.flatnonzero(ok)
    counts = np.bincount(person[rows], minlength=P)  # each person's frames, for weights and the priors
    if len(rows) > max_fit_rows:
        # long videos: a regular subsample of every person's frames fits the same floor (more frames of the
        # same people add no evidence), and keeps this fit's memory bounded whatever the video's length
        rows = rows[::math.ceil(len(rows) / max_fit_rows)]
    pidx = person[rows]
    joints = poses[rows[:, None], _KEY_JOINTS[None, :]].astype(np.float64)  # (M, 4, 3)
    up, upright = _body_up(joints)
    rays = _ray_planes(joints[upright])
    # every person is independent evidence about the floor (frames of one person are not): the priors'
    # weight falls with the number of people seen for at least a second's worth of frames
    people = max(1, int((counts >= 25).sum()))
    prior_weight, ray_weight = prior_weight / people, ray_weight / people
    scale = np.ones(P)
    for attempt in range(4):
        ankles = (joints[:, [_K_R_ANKLE, _K_L_ANKLE]]
                  + ((scale[pidx] - 1.0)[:, None] * joints[:, _K_PELVIS])[:, None])
        heights = ankles @ up
        # the lower ankle of every pose, and the other one too where it is as low (both feet down)
        low_mask = heights <= heights.min(axis=1, keepdims=True) + both_feet_tol
        low, low_person = ankles[low_mask], np.repeat(pidx, 2)[low_mask.ravel()]
        weights = np.ones(len(low))
        n = up
        for _ in range(3):
            n = _floor_normal(low, low_person, up, prior_weight, weights, ray_weight * rays, between_weight)
            # drop feet well off each person's floor (jumps, flight phases, bad frames): 3 robust sigmas
            h = low @ n
            resid = np.empty_like(h)
            for p in np.unique(low_person):
                sel = low_person == p
                resid[sel] = h[sel] - np.median(h[sel])
            mad = 1.4826 * np.median(np.abs(resid)) + 1e-3
            weights = (np.abs(resid) <= 3.0 * mad).astype(np.float64)
        # each person's floor height below the camera, along n (positive: the floor is below the camera)
        floor = np.full(P, np.nan)
        for p in np.unique(low_person):
            sel = (low_person == p) & (weights > 0)
            if sel.any():
                floor[p] = -np.median(low[sel] @ n) + ankle_height
        valid = np.isfinite(floor) & (floor > 0)
        if not equalise_scale or valid.sum() < 2 or attempt == 3:
            break
        common = _weighted_median(floor[valid], counts[valid])
        new = scale.copy()
        new[valid] = np.clip(scale[valid] * common / floor[valid], 2.0 / 3.0, 1.5)
        if np.allclose(new, scale, atol=1e-3):
            break
        scale = new  # and fit again with everyone's feet moved onto the common floor
    have = np.isfinite(floor)
    height = (float(_weighted_median(floor[have], counts[have])) if have.any()
              else float(-np.median(low @ n) + ankle_height))
    # world axes in camera coordinates: y = up, x = the camera's right made horizontal, z = x cross y
    y_axis = _unit(n)
    x_axis = _unit(np.array([1.0, 0.0, 0.0]) - y_axis[0] * y_axis)
    z_axis = np.cross(x_axis, y_axis)
    rot = np.stack([x_axis, y_axis, z_axis])  # world-from-camera
    position = np.array([0.0, height, 0.0])
    world = np.empty(poses.shape, np.float32) if out is None else out
    for lo in range(0, len(poses), _CHUNK_ROWS):
        chunk = slice(lo, lo + _CHUNK_ROWS)
        pose = poses[chunk].astype(np.float64)
        roots = pose[:, :1] * scale[person[chunk]][:, None, None]
        moved = (pose - pose[:, :1] + roots) @ rot.T + position
        world[chunk] = np.where(ok[chunk][:, None, None], moved, np.nan)
    camera = {
        "rotation": rot.astype(np.float32), "position": position.astype(np.float32), "height": height,
        "pitch_deg": float(np.degrees(np.arcsin(np.clip(-y_axis[2], -1.0, 1.0)))),
        "roll_deg": float(np.degrees(np.arctan2(-y_axis[0], -y_axis[1]))),
        "up_camera": y_axis.astype(np.float64), "person_scale": scale.astype(np.float32),
        "ankle_height": float(ankle_height), "frames_used": int(len(joints)), "upright_frames": int(upright.sum()),
    }
    return world, camera


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])



def estimate_trajectories(tracks: TrackRows, keypoints_2d: np.ndarray, image_size: tuple[int, int], fps: float,
                          intrinsics: CameraIntrinsics | None = None,
                          model: TemporalModel | str | os.PathLike | None = None, flip: bool = True) -> np.ndarray:
    """``estimate_trajectory`` for every track: keypoint rows (N, 17, 2|3) pixels in the layout of ``tracks``
    (a ``wildpose.types.TrackRows``) -> (N, 3) float32 roots, metres, camera axes.

    Each run of consecutive frames of a track is processed on its own, with its own timestamps (as
    ``pipeline.lift_tracks`` lifts them). ``intrinsics`` (default: ``CameraIntrinsics.default(image_size)``)
    gives the focal length and principal point: use the ones the lifter used.
    """
    kp = np.asarray(keypoints_2d)
    if kp.ndim != 3 or kp.shape[1] != 17 or kp.shape[2] not in (2, 3) or len(kp) != tracks.num_rows:
        raise ValueError(f"keypoints_2d: expected shape ({tracks.num_rows}, 17, 2 or 3), got {kp.shape}")
    times = check_timestamps(tracks.timestamps, tracks.num_frames, float(fps))
    if model is None:
        model = _default_model()
    elif not isinstance(model, TemporalModel):
        model = load_trajectory_model(model)
    if intrinsics is None:
        intrinsics = CameraIntrinsics.default(image_size)
    out = np.full((len(kp), 3), np.nan, np.float32)
    for _, rows in tracks.spans():
        out[rows] = estimate_trajectory(kp[rows], image_size, fps, times[tracks.frame_index[rows]],
                                        intrinsics.focal_length, model, flip, intrinsics.principal_point)
    return out


@dataclass
class PeopleInWorld:
    """Where everyone is (``locate_people``'s output), rows in the layout of the tracks they came from.

    trajectory: (N, 3) float32, each pelvis in its frame's camera axes, metres (after ``align_world``'s
        per-person scale, with several people)
    poses_world: (N, 17, 3) float32, one fixed world frame: metres, x right, y up, z towards the (first
        frame's) camera, the floor at y = 0; NaN where a pose could not be placed
    rotation: (3, 3) float32, world-from-camera of the first frame
    position: (3,) float32, the camera in the world (x = z = 0, at its height)
    rotations: (T, 3, 3) float32, the camera rotations used (identities for a static camera):
        camera-at-frame-t-from-camera-at-frame-0
    person_scale: (P,) float32, the factor each person's distance was scaled by to stand on the common floor
    """

    trajectory: np.ndarray
    poses_world: np.ndarray
    rotation: np.ndarray
    position: np.ndarray
    rotations: np.ndarray
    person_scale: np.ndarray


def locate_people(tracks: TrackRows, keypoints_2d: np.ndarray, poses_3d: np.ndarray, image_size: tuple[int, int],
                  fps: float, intrinsics: CameraIntrinsics | None = None,
                  model: TemporalModel | str | os.PathLike | None = None, flip: bool = True,
                  camera_rotations: np.ndarray | None = None) -> PeopleInWorld:
    """Root trajectories and the world frame for every track.

    Parameters
    ----------
    tracks : wildpose.types.TrackRows
        The layout of the rows (``Tracks`` or ``Result``): which track and frame each row is.
    keypoints_2d : (N, 17, 3) pixels + score; undistorted (ideal pinhole) for a lens with distortion, as
        the lifter saw them.
    poses_3d : (N, 17, 3) root-relative metres, camera axes (the lifter's output).
    image_size, fps, model, flip : as for ``estimate_trajectory``.
    intrinsics : the camera the lifter used (default: ``CameraIntrinsics.default(image_size)``).
    camera_rotations : (T, 3, 3), optional
        For a turning camera: camera-at-frame-t-from-camera-at-frame-0 (``wildpose.camera_motion``'s
        convention, ``d_t = R_t d_0``). Each frame's camera-space joints are brought into the first frame's
        camera axes (``R_t^T x``) before the world alignment, so ``poses_world`` is one fixed world frame over
        the whole clip. None (default): a static camera.

    Returns
    -------
    PeopleInWorld
        ``trajectory`` and the absolute camera-space joints (``poses_3d + trajectory``) stay in each frame's
        own camera axes; ``poses_world`` is in the fixed world frame.
    """
    poses_3d = np.asarray(poses_3d, np.float32)
    if poses_3d.shape != (tracks.num_rows, 17, 3):
        raise ValueError(f"poses_3d: expected shape ({tracks.num_rows}, 17, 3), got {poses_3d.shape}")
    trajectory = estimate_trajectories(tracks, keypoints_2d, image_size, fps, intrinsics, model, flip)
    T = tracks.num_frames
    # one (N, 17, 3) float32 buffer: camera-space joints, turned into the first frame's axes in place, and
    # then the world poses (align_world writes each chunk after it has read it)
    joints = poses_3d + trajectory[:, None, :]
    if camera_rotations is None:
        rotations = np.broadcast_to(np.eye(3, dtype=np.float32), (T, 3, 3))
    else:
        rotations = np.asarray(camera_rotations, np.float64)
        if rotations.shape != (T, 3, 3) or not np.isfinite(rotations).all():
            raise ValueError(f"camera_rotations: expected finite shape ({T}, 3, 3), got {rotations.shape}")
        for lo in range(0, len(joints), _CHUNK_ROWS):
            chunk = slice(lo, lo + _CHUNK_ROWS)
            # into the first frame's camera axes (the camera centre stays at the origin: rotation only): R_t^T x
            joints[chunk] = np.einsum("nji,nkj->nki", rotations[tracks.frame_index[chunk]],
                                      joints[chunk].astype(np.float64))
    person = tracks.row_track()
    world, camera = align_world(joints, person=person, num_people=len(tracks), out=joints)
    # keep the camera-space trajectory consistent with the world poses: align_world may have scaled a
    # person's distance so that everyone stands on one floor
    scale = camera["person_scale"]
    if not np.allclose(scale, 1.0):
        trajectory = (trajectory * scale[person][:, None]).astype(np.float32)
    return PeopleInWorld(trajectory, world, camera["rotation"], camera["position"],
                         np.ascontiguousarray(rotations, np.float32), scale)


__all__ = ["estimate_trajectory", "estimate_trajectories", "locate_people", "PeopleInWorld", "fit_root",
           "align_world", "load_trajectory_model", "default_trajectory_path", "ANKLE_HEIGHT"]
