"""The 2D file `wildpose detect` writes: tracked COCO-17 keypoints of every person, no 3D, no pickle.

Keys: keypoints_2d float32 (P, T, 17, 3), track_ids int32 (P,), interpolated bool (P, T),
timestamps float64 (T,), fps float64 (), image_size int64 (2,) = (w, h).
"""

from __future__ import annotations

import os
import zipfile

import numpy as np

from ..atomic import atomic_path
from ..errors import FormatError
from ..types import Tracks

KEYS = ("keypoints_2d", "track_ids", "interpolated", "timestamps", "fps", "image_size")


def save_tracks(tracks: Tracks, fps: float, image_size: tuple[int, int], path: str | os.PathLike) -> None:
    """Write tracked 2D keypoints to ``path`` (.npz) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f, keypoints_2d=tracks.keypoints_2d, track_ids=tracks.track_ids,
                interpolated=tracks.interpolated, timestamps=tracks.timestamps,
                fps=np.float64(fps), image_size=np.asarray(image_size, np.int64))


def load_tracks(path: str | os.PathLike) -> tuple[Tracks, float, tuple[int, int]]:
    """Read a file written by save_tracks -> (tracks, fps, (w, h)). FormatError on anything else."""
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in KEYS if k not in data.files]
            if missing:
                raise FormatError(f"not a wildpose 2D keypoints file (missing {', '.join(missing)})", path)
            arrays = {k: data[k] for k in KEYS}
    except FormatError:
        raise
    except FileNotFoundError:
        raise FormatError("no such file", path) from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise FormatError(f"cannot read as .npz ({exc})", path) from None
    try:
        tracks = Tracks(arrays["keypoints_2d"], arrays["track_ids"], arrays["interpolated"], arrays["timestamps"])
        w, h = (int(v) for v in np.asarray(arrays["image_size"]).reshape(2))
    except ValueError as exc:
        raise FormatError(str(exc), path) from None
    return tracks, float(arrays["fps"]), (w, h)
