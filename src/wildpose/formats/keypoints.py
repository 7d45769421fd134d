"""The 2D file `wildpose detect` writes: tracked COCO-17 keypoints of every person, no 3D, no pickle.

Format 2 (sparse, one row per person-frame, as ``poses.npz``): format_version int64 () = 2, track_ids int32 (P,),
track_lengths int64 (P,), frame_index int64 (N,), keypoints_2d float32 (N, 17, 3), interpolated bool (N,),
timestamps float64 (T,), fps float64 (), image_size int64 (2,) = (w, h). Files of format 1 (wildpose 0.1:
keypoints_2d (P, T, 17, 3) NaN where absent, interpolated (P, T), no format_version) still load.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..types import Tracks
from .result import _KINDS, _one_line, _open_npz, _reason
from .safe_pickle import write_npz

FORMAT_VERSION = 2
KEYS = ("keypoints_2d", "track_ids", "interpolated", "timestamps", "fps", "image_size")
SPARSE_KEYS = ("format_version", "track_lengths", "frame_index")


def save_tracks(tracks: Tracks, fps: float, image_size: tuple[int, int], path: str | os.PathLike) -> None:
    """Write tracked 2D keypoints to ``path`` (.npz, format 2) atomically."""
    write_npz(path, {"format_version": np.asarray(FORMAT_VERSION, np.int64), "track_ids": tracks.track_ids,
                     "track_lengths": tracks.track_lengths, "frame_index": tracks.frame_index,
                     "keypoints_2d": tracks.keypoints_2d, "interpolated": tracks.interpolated,
                     "timestamps": tracks.timestamps, "fps": np.float64(fps),
                     "image_size": np.asarray(image_size, np.int64)})


def load_tracks(path: str | os.PathLike) -> tuple[Tracks, float, tuple[int, int]]:
    """Read a file written by save_tracks (format 2, or 0.1's format 1) -> (tracks, fps, (w, h)).

    FormatError naming the file on anything else."""
    with _open_npz(Path(path)) as data:  # FormatError for a missing file, an .npy, anything not a zip
        sparse = "format_version" in data.files
        keys = KEYS + (SPARSE_KEYS if sparse else ())
        missing = [k for k in keys if k not in data.files]
        if missing:
            raise FormatError(f"not a wildpose 2D keypoints file (missing {', '.join(missing)})", path)
        arrays = {}
        for k in keys:
            try:
                arrays[k] = data[k]
            except ValueError as exc:
                what = "a pickled object array (refused: pickle can run code)" if "allow_pickle" in str(exc) else \
                    f"unreadable ({_reason(exc)})"
                raise FormatError(f"{k!r} is {what}", path) from None
            # a damaged member makes zlib, zipfile and numpy's header parser raise almost anything
            except Exception as exc:  # noqa: BLE001
                raise FormatError(f"{k!r} is unreadable ({_reason(exc)})", path) from None
            if not isinstance(arrays[k], np.ndarray):
                raise FormatError(f"member {k!r} is not an .npy array", path)
            if arrays[k].dtype.kind not in _KINDS[k]:  # as load_result: no silent cast of complex ids, say
                raise FormatError(f"{k!r} has dtype {arrays[k].dtype}", path)
    try:
        if not sparse:
            tracks = Tracks.from_dense(arrays["keypoints_2d"], arrays["track_ids"], arrays["interpolated"],
                                       arrays["timestamps"])
        elif int(arrays["format_version"]) != FORMAT_VERSION:
            raise FormatError(f"2D keypoints format_version {arrays['format_version'].tolist()!r} is not one this "
                              f"wildpose reads ({FORMAT_VERSION})", path)
        else:
            tracks = Tracks(arrays["track_ids"], arrays["track_lengths"], arrays["frame_index"],
                            arrays["timestamps"], arrays["keypoints_2d"], arrays["interpolated"])
        w, h = (int(v) for v in np.asarray(arrays["image_size"]).reshape(2))
        if arrays["fps"].shape != ():
            raise ValueError(f"fps: expected one number, got shape {arrays['fps'].shape}")
        fps = float(arrays["fps"])
    except (ValueError, TypeError) as exc:
        raise FormatError(_one_line(exc), path) from None
    return tracks, fps, (w, h)
