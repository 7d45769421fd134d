"""``poses.npz``, wildpose's own result file, and the reference's ``--viz-export`` ``.npy``. No pickle.

``poses.npz`` (format_version 2) is sparse: one row per person-frame, the rows of a track together and in frame
order, so the file grows with what was seen, not with tracks x frames (``np.load(path)`` reads it; every
array is plain, never an object array). P tracks, N rows, T frames:

=====================  ===========================  ===============================================
key                    shape, dtype                 meaning
=====================  ===========================  ===============================================
format_version         () int64                     2
track_ids              (P,) int32                   stable person ids
track_lengths          (P,) int64                   rows of each track (track p: rows
                                                    ``sum(track_lengths[:p])`` on)
frame_index            (N,) int64                   each row's frame (into ``timestamps``)
keypoints_2d           (N, 17, 3) float32           COCO-17 x, y pixels + score
poses_3d               (N, 17, 3) float32           H36M-17 metres, camera axes, root-relative
interpolated           (N,) bool                    keypoints filled in, not detected
timestamps             (T,) float64                 seconds
fps                    () float64                   frames per second
image_size             (2,) int64                   width, height in pixels
trajectory             (N, 3) float32               pelvis in camera space, metres (optional)
poses_world            (N, 17, 3) float32           world frame: y up, floor at y = 0 (optional)
camera_*               see the README               the camera (optional): ``camera_matrix`` (3, 3),
                                                    ``camera_model``, ``camera_distortion`` (n,),
                                                    ``focal_length_known``, ``camera_rotation`` (3, 3),
                                                    ``camera_position`` (3,), ``camera_rotations``
                                                    (T, 3, 3), ``camera_static``,
                                                    ``camera_rotation_held`` (T,)
*extras*               any plain array              ``Result.extras``, each under its own name
=====================  ===========================  ===============================================

``poses_3d_camera`` (absolute joints in camera space) is ``poses_3d + trajectory[:, None]``: computed on access
(``Result.poses_3d_camera``), not stored. Files of format 1 (wildpose 0.1: dense (P, T, ...) arrays, NaN where
a person is absent, no ``format_version``) still load, into the same sparse ``Result``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FormatError
from ..types import Camera, Result, rows_from_dense
from .safe_pickle import write_npz

__all__ = ["FORMAT_VERSION", "RESULT_KEYS", "save_result", "load_result", "save_vp3d_export", "load_vp3d_export"]

FORMAT_VERSION = 2
RESULT_KEYS = ("format_version", "track_ids", "track_lengths", "frame_index", "keypoints_2d", "poses_3d",
               "interpolated", "timestamps", "fps", "image_size")
_V1_KEYS = ("keypoints_2d", "poses_3d", "track_ids", "timestamps", "fps", "image_size", "interpolated")
_CAMERA_KEYS = ("camera_matrix", "camera_model", "camera_distortion", "focal_length_known", "camera_rotation",
                "camera_position", "camera_rotations", "camera_static", "camera_rotation_held")
_WORLD_KEYS = ("trajectory", "poses_world")
_TYPED_KEYS = set(RESULT_KEYS) | set(_CAMERA_KEYS) | set(_WORLD_KEYS) | {"poses_3d_camera"}

# what a key's dtype kind may be when loading: files written by other tools may use other widths
_KINDS = {"keypoints_2d": "f", "poses_3d": "f", "track_ids": "iu", "track_lengths": "iu", "frame_index": "iu",
          "timestamps": "fiu", "fps": "fiu", "image_size": "iu", "interpolated": "b", "format_version": "iu",
          "trajectory": "f", "poses_world": "f", "camera_matrix": "fiu", "camera_distortion": "fiu",
          "camera_rotation": "f", "camera_position": "f", "camera_rotations": "f", "camera_static": "b",
          "camera_rotation_held": "b", "focal_length_known": "b", "camera_model": "U"}
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip


def _camera_arrays(camera: Camera) -> dict[str, np.ndarray]:
    intrinsics = camera.intrinsics
    return {"camera_matrix": np.asarray(intrinsics.matrix, np.float64),
            "camera_model": np.asarray(intrinsics.model),
            "camera_distortion": np.asarray(intrinsics.distortion, np.float64).reshape(-1),
            "focal_length_known": np.asarray(camera.focal_length_known),
            "camera_rotation": camera.rotation, "camera_position": camera.position,
            "camera_rotations": camera.rotations, "camera_static": np.asarray(camera.static),
            "camera_rotation_held": camera.rotation_held}


def save_result(result: Result, path: str | os.PathLike, compress: bool = True) -> None:
    """Write ``result`` to ``path`` (``poses.npz``, format_version 2) atomically.

    Parameters
    ----------
    result
        The rows to write (see the module docstring); ``result.extras`` maps further names to arrays,
        written under those names.
    path
        Output file. Written under a temporary name in the same folder and renamed when complete.
    compress
        Deflate the arrays (``np.savez_compressed``).

    Raises
    ------
    FormatError
        An extra's name collides with a fixed key or is not a valid name, or an extra is not a plain
        numeric/boolean/string array (object arrays would need pickle to read back).
    """
    arrays: dict[str, np.ndarray] = {
        "format_version": np.asarray(FORMAT_VERSION, np.int64),
        "track_ids": np.asarray(result.track_ids, np.int32),
        "track_lengths": np.asarray(result.track_lengths, np.int64),
        "frame_index": np.asarray(result.frame_index, np.int64),
        "keypoints_2d": np.asarray(result.keypoints_2d, np.float32),
        "poses_3d": np.asarray(result.poses_3d, np.float32),
        "interpolated": np.asarray(result.interpolated, bool),
        "timestamps": np.asarray(result.timestamps, np.float64),
        "fps": np.asarray(result.fps, np.float64).reshape(()),
        "image_size": np.asarray(result.image_size, np.int64).reshape(2),
    }
    if result.trajectory is not None:
        arrays["trajectory"] = result.trajectory
    if result.poses_world is not None:
        arrays["poses_world"] = result.poses_world
    if result.camera is not None:
        arrays.update(_camera_arrays(result.camera))
    for name, value in result.extras.items():
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise FormatError(f"extra name {name!r} is not a valid array name", path)
        if name in arrays or name in _TYPED_KEYS:
            raise FormatError(f"extra {name!r} collides with a fixed poses.npz key", path)
        arr = np.asarray(value)
        if arr.dtype.hasobject or arr.dtype.kind not in "biufcSUmM" or arr.dtype.names is not None:
            raise FormatError(f"extra {name!r} has dtype {arr.dtype}: only plain arrays (no objects) are written",
                              path)
        arrays[name] = arr
    write_npz(path, arrays, compress=compress)


def _open_npz(path: Path) -> np.lib.npyio.NpzFile:
    if not path.exists():
        raise FormatError("no such file", path)
    if not path.is_file():
        raise FormatError("not a file", path)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in _ZIP_MAGICS:
        what = "an .npy array" if magic == b"\x93NUM" else "empty" if not magic else "not a zip archive"
        raise FormatError(f"not an .npz file ({what})", path)
    try:
        return np.load(path, allow_pickle=False)
    # a damaged archive makes zipfile raise more than BadZipFile (NotImplementedError, struct.error, ...)
    except Exception as exc:  # noqa: BLE001
        raise FormatError(f"not a readable .npz file ({_reason(exc)})", path) from None


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (numpy prints arrays over several)."""
    return " ".join(str(exc).split())


def _reason(exc: BaseException) -> str:
    """One line saying what went wrong, with the exception's type (for errors from numpy, zipfile, zlib)."""
    text = _one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_all(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with _open_npz(path) as npz:
        for key in npz.files:
            try:
                value = npz[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise FormatError(f"{key!r} is a pickled object array (refused: pickle can run code)",
                                      path) from None
                raise FormatError(f"{key!r} is unreadable ({_reason(exc)})", path) from None
            # a damaged member makes zlib, zipfile and numpy's header parser raise almost anything (zlib.error,
            # SyntaxError, tokenize.TokenError, MemoryError for a header claiming terabytes, ...)
            except Exception as exc:  # noqa: BLE001
                raise FormatError(f"{key!r} is unreadable ({_reason(exc)})", path) from None
            if not isinstance(value, np.ndarray):  # a member that is not an .npy file: numpy gives its bytes
                raise FormatError(f"member {key!r} is not an .npy array", path)
            arrays[key] = value
    return arrays


def _check_shapes(arrays: dict, expected: dict, path, what: str) -> None:
    for key, shape in expected.items():
        if key in arrays and arrays[key].shape != shape:
            raise FormatError(f"{key!r} has shape {arrays[key].shape}, expected {shape} ({what})", path)


def _from_v1(arrays: dict, path) -> dict:
    """A 0.1 (dense) file's arrays -> the sparse ones, in place of the dense keys."""
    kp = arrays["keypoints_2d"]
    if kp.ndim != 4 or kp.shape[2:] != (17, 3):
        raise FormatError(f"'keypoints_2d' has shape {kp.shape}, expected (P, T, 17, 3)", path)
    P, T = kp.shape[:2]
    _check_shapes(arrays, {"poses_3d": (P, T, 17, 3), "track_ids": (P,), "timestamps": (T,), "fps": (),
                           "image_size": (2,), "interpolated": (P, T), "trajectory": (P, T, 3),
                           "poses_world": (P, T, 17, 3), "poses_3d_camera": (P, T, 17, 3)},
                  path, f"P={P} tracks, T={T} frames from keypoints_2d")
    lengths, frame_index, at = rows_from_dense(~np.isnan(arrays["poses_3d"][..., 0]).all(-1))
    out = {k: v for k, v in arrays.items() if k != "poses_3d_camera"}  # derived: poses_3d + trajectory
    out.update(track_lengths=lengths, frame_index=frame_index)
    for key in ("keypoints_2d", "poses_3d", "interpolated", "trajectory", "poses_world"):
        if key in arrays:
            out[key] = arrays[key][at]
    return out


def _camera(arrays: dict, T: int, path) -> Camera | None:
    """The Camera of a file that has the camera keys (files without them, e.g. other tools', give None)."""
    from ..camera import CameraIntrinsics

    if not all(k in arrays for k in _CAMERA_KEYS):
        return None
    _check_shapes(arrays, {"camera_matrix": (3, 3), "camera_rotation": (3, 3), "camera_position": (3,),
                           "camera_rotations": (T, 3, 3), "camera_rotation_held": (T,), "camera_static": (),
                           "focal_length_known": (), "camera_model": ()}, path, f"T={T} frames")
    K = np.asarray(arrays["camera_matrix"], np.float64)
    try:
        intrinsics = CameraIntrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], str(arrays["camera_model"]),
                                      tuple(np.asarray(arrays["camera_distortion"], np.float64).reshape(-1)))
        return Camera(intrinsics, bool(arrays["focal_length_known"]), arrays["camera_rotation"],
                      arrays["camera_position"], arrays["camera_rotations"], bool(arrays["camera_static"]),
                      arrays["camera_rotation_held"])
    except ValueError as exc:
        raise FormatError(f"the camera keys do not describe a camera ({exc})", path) from None


def load_result(path: str | os.PathLike) -> Result:
    """Read a ``poses.npz`` written by :func:`save_result` (format 2), by wildpose 0.1 (format 1, dense), or by
    any tool writing the same keys.

    Parameters
    ----------
    path
        The ``.npz`` file. Never unpickled: object arrays are refused.

    Returns
    -------
    Result
        Sparse, whatever the file's format; the camera and world keys in their typed fields; every other array
        in the file in ``extras``.

    Raises
    ------
    FormatError
        Missing file, not an npz, truncated, pickled content, a missing key, an unknown format version, or a
        wrong shape/dtype; the message names the file and the key.
    """
    path = Path(path)
    arrays = _read_all(path)
    if "format_version" not in arrays:
        missing = [k for k in _V1_KEYS if k not in arrays]
        if missing:
            raise FormatError(f"not a wildpose poses.npz: missing key{'s' * (len(missing) > 1)} "
                              f"{', '.join(missing)}", path)
        for key in _V1_KEYS:
            if arrays[key].dtype.kind not in _KINDS[key]:
                raise FormatError(f"{key!r} has dtype {arrays[key].dtype}", path)
        arrays = _from_v1(arrays, path)
    else:
        version = arrays["format_version"]
        if version.shape != () or version.dtype.kind not in "iu" or int(version) != FORMAT_VERSION:
            raise FormatError(f"poses.npz format_version {version.tolist()!r} is not one this wildpose reads "
                              f"({FORMAT_VERSION}): written by a newer version?", path)
        missing = [k for k in RESULT_KEYS if k not in arrays]
        if missing:
            raise FormatError(f"not a wildpose poses.npz: missing key{'s' * (len(missing) > 1)} "
                              f"{', '.join(missing)}", path)
    for key, kinds in _KINDS.items():
        if key in arrays and arrays[key].dtype.kind not in kinds:
            raise FormatError(f"{key!r} has dtype {arrays[key].dtype}", path)
    P, N, T = len(arrays["track_ids"].reshape(-1)), len(arrays["frame_index"].reshape(-1)), arrays["timestamps"].size
    _check_shapes(arrays, {"track_ids": (P,), "track_lengths": (P,), "frame_index": (N,), "timestamps": (T,),
                           "keypoints_2d": (N, 17, 3), "poses_3d": (N, 17, 3), "interpolated": (N,), "fps": (),
                           "image_size": (2,), "trajectory": (N, 3), "poses_world": (N, 17, 3)},
                  path, f"P={P} tracks, N={N} rows, T={T} frames")
    camera = _camera(arrays, T, path)
    # a partial set of camera keys (another tool's file) is kept as it is, in extras
    typed = _TYPED_KEYS if camera is not None else _TYPED_KEYS - set(_CAMERA_KEYS)
    extras = {k: v for k, v in arrays.items() if k not in typed}
    try:
        return Result(arrays["track_ids"], arrays["track_lengths"], arrays["frame_index"], arrays["timestamps"],
                      keypoints_2d=arrays["keypoints_2d"], poses_3d=arrays["poses_3d"],
                      interpolated=arrays["interpolated"], fps=float(arrays["fps"]), image_size=arrays["image_size"],
                      trajectory=arrays.get("trajectory"), poses_world=arrays.get("poses_world"),
                      camera=camera, extras=extras)
    except ValueError as exc:  # the layout (lengths, frame order) is checked by TrackRows
        raise FormatError(_one_line(exc), path) from None


def save_vp3d_export(poses: np.ndarray, path: str | os.PathLike) -> None:
    """Write one person's 3D poses as the reference's ``--viz-export`` ``.npy``, atomically.

    Parameters
    ----------
    poses
        (T, 17, 3) H36M-17 joints in metres, camera axes, root at the origin.
    path
        Output ``.npy`` (float32, no pickle).

    Raises
    ------
    ValueError
        ``poses`` is not (T, 17, 3).
    """
    poses = np.ascontiguousarray(poses, dtype=np.float32)
    if poses.ndim != 3 or poses.shape[1:] != (17, 3):
        raise ValueError(f"poses: expected shape (T, 17, 3), got {poses.shape}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npy"
            np.save(f, poses, allow_pickle=False)


def load_vp3d_export(path: str | os.PathLike) -> np.ndarray:
    """Read a ``--viz-export`` ``.npy`` (the reference's or ours).

    Returns
    -------
    np.ndarray
        (T, 17, 3) float32, metres, camera space, root at the origin.

    Raises
    ------
    FormatError
        Missing file, not an ``.npy``, pickled content, or not (T, 17, 3) numbers.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError("no such file" if not path.exists() else "not a file", path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise FormatError("not an .npy file", path)
    try:
        poses = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise FormatError("holds a pickled object array (refused: pickle can run code)", path) from None
        raise FormatError(f"unreadable .npy ({_reason(exc)})", path) from None
    except Exception as exc:  # noqa: BLE001 - the header parser's SyntaxError, MemoryError for a huge shape, ...
        raise FormatError(f"unreadable .npy ({_reason(exc)})", path) from None
    if poses.dtype.kind not in "fiu" or poses.ndim != 3 or poses.shape[1:] != (17, 3):
        raise FormatError(f"expected (T, 17, 3) numbers, got {poses.dtype} {poses.shape}", path)
    return poses.astype(np.float32, copy=False)
