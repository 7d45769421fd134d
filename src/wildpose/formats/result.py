"""``poses.npz``, wildpose's own result file, and the reference's ``--viz-export`` ``.npy``. No pickle.

``poses.npz`` keys (``np.load(path)`` reads it; every array is plain, never an object array):

=================  ===========================  ====================================================
key                shape, dtype                 meaning
=================  ===========================  ====================================================
keypoints_2d       (P, T, 17, 3) float32        COCO-17 x, y pixels + score; NaN where absent
poses_3d           (P, T, 17, 3) float32        H36M-17 metres, camera axes, root-relative; NaN
track_ids          (P,) int32                   stable person ids
timestamps         (T,) float64                 seconds
fps                () float64                   frames per second
image_size         (2,) int64                   width, height in pixels
interpolated       (P, T) bool                  keypoints filled in, not detected
*extras*           any plain array              ``Result.extras``, each under its own name
=================  ===========================  ====================================================
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FormatError
from ..types import Result
from .safe_pickle import write_npz

__all__ = ["RESULT_KEYS", "save_result", "load_result", "save_vp3d_export", "load_vp3d_export"]

RESULT_KEYS = ("keypoints_2d", "poses_3d", "track_ids", "timestamps", "fps", "image_size", "interpolated")

# what a key's dtype kind may be when loading: files written by other tools may use other widths
_KINDS = {"keypoints_2d": "f", "poses_3d": "f", "track_ids": "iu", "timestamps": "fiu", "fps": "fiu",
          "image_size": "iu", "interpolated": "b"}
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members / an empty zip


def save_result(result: Result, path: str | os.PathLike, compress: bool = True) -> None:
    """Write ``result`` to ``path`` (``poses.npz``) atomically.

    Parameters
    ----------
    result
        The arrays to write (shapes as in the module docstring); ``result.extras`` maps further names to
        arrays, written under those names.
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
        "keypoints_2d": np.asarray(result.keypoints_2d, np.float32),
        "poses_3d": np.asarray(result.poses_3d, np.float32),
        "track_ids": np.asarray(result.track_ids, np.int32),
        "timestamps": np.asarray(result.timestamps, np.float64),
        "fps": np.asarray(result.fps, np.float64).reshape(()),
        "image_size": np.asarray(result.image_size, np.int64).reshape(2),
        "interpolated": np.asarray(result.interpolated, bool),
    }
    for name, value in result.extras.items():
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
            raise FormatError(f"extra name {name!r} is not a valid array name", path)
        if name in arrays:
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
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise FormatError(f"not a readable .npz file ({exc})", path) from None


def load_result(path: str | os.PathLike) -> Result:
    """Read a ``poses.npz`` written by :func:`save_result` (or any tool writing the same keys).

    Parameters
    ----------
    path
        The ``.npz`` file. Never unpickled: object arrays are refused.

    Returns
    -------
    Result
        Fixed keys converted to the documented dtypes; every other array in the file in ``extras``.

    Raises
    ------
    FormatError
        Missing file, not an npz, truncated, pickled content, a missing key, or a wrong shape/dtype; the
        message names the file and the key.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    with _open_npz(path) as npz:
        missing = [k for k in RESULT_KEYS if k not in npz.files]
        if missing:
            raise FormatError(f"not a wildpose poses.npz: missing key{'s' * (len(missing) > 1)} "
                              f"{', '.join(missing)}", path)
        for key in npz.files:
            try:
                arrays[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise FormatError(f"{key!r} is a pickled object array (refused: pickle can run code)",
                                      path) from None
                raise FormatError(f"{key!r} is unreadable ({exc})", path) from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise FormatError(f"{key!r} is unreadable ({exc})", path) from None
    for key, kinds in _KINDS.items():
        if arrays[key].dtype.kind not in kinds:
            raise FormatError(f"{key!r} has dtype {arrays[key].dtype}", path)
    kp = arrays["keypoints_2d"]
    if kp.ndim != 4 or kp.shape[2:] != (17, 3):
        raise FormatError(f"'keypoints_2d' has shape {kp.shape}, expected (P, T, 17, 3)", path)
    P, T = kp.shape[:2]
    expected = {"poses_3d": (P, T, 17, 3), "track_ids": (P,), "timestamps": (T,), "fps": (),
                "image_size": (2,), "interpolated": (P, T)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise FormatError(f"{key!r} has shape {arrays[key].shape}, expected {shape} "
                              f"(P={P} tracks, T={T} frames from keypoints_2d)", path)
    extras = {k: v for k, v in arrays.items() if k not in RESULT_KEYS}
    try:
        return Result(keypoints_2d=kp, poses_3d=arrays["poses_3d"], track_ids=arrays["track_ids"],
                      timestamps=arrays["timestamps"], fps=float(arrays["fps"]), image_size=arrays["image_size"],
                      interpolated=arrays["interpolated"], extras=extras)
    except ValueError as exc:  # shapes were checked above; this is a last line of defence
        raise FormatError(str(exc), path) from None


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
        raise FormatError(f"unreadable .npy ({exc})", path) from None
    except (OSError, EOFError) as exc:
        raise FormatError(f"unreadable .npy ({exc})", path) from None
    if poses.dtype.kind not in "fiu" or poses.ndim != 3 or poses.shape[1:] != (17, 3):
        raise FormatError(f"expected (T, 17, 3) numbers, got {poses.dtype} {poses.shape}", path)
    return poses.astype(np.float32, copy=False)
