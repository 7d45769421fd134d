"""The 2D file `wildpose detect` writes: tracked COCO-17 keypoints of every person, no 3D, no pickle.

Format 2 (sparse, one row per person-frame, as ``poses.npz``): format_version int64 () = 2, track_ids int32 (P,),
track_lengths int64 (P,), frame_index int64 (N,), keypoints_2d float32 (N, 17, 3), interpolated bool (N,),
timestamps float64 (T,), fps float64 (), image_size int64 (2,) = (w, h). Files of format 1 (wildpose 0.1:
keypoints_2d (P, T, 17, 3) NaN where absent, interpolated (P, T), no format_version) still load.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ..errors import FormatError
from ..types import Tracks
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
    try:
        with np.load(path, allow_pickle=False) as data:
            sparse = "format_version" in data.files
            keys = KEYS + (SPARSE_KEYS if sparse else ())
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise FormatError(f"not a wildpose 2D keypoints file (missing {', '.join(missing)})", path)
            arrays = {k: data[k] for k in keys}
    except FormatError:
        raise
    except FileNotFoundError:
        raise FormatError("no such file", path) from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise FormatError(f"cannot read as .npz ({exc})", path) from None
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
    except (ValueError, TypeError) as exc:
        raise FormatError(str(exc), path) from None
    return tracks, float(arrays["fps"]), (w, h)
