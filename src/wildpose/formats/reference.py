"""The reference system's (VideoPose3D's) files: read them without running code, write them so its scripts
load them unchanged.

- Detections ``<video>.npz`` (its ``infer_video_d2.py``): ``boxes`` and ``keypoints``, one entry per frame,
  each ``[[], per_person]`` in Detectron's per-class layout (class 0 is the background, empty); boxes
  ``(K, 5)`` x1, y1, x2, y2, score; keypoints ``(K, 4, 17)`` rows x, y, logit, probability; ``segments``
  (``None`` per frame) and ``metadata`` ``{'w', 'h'}``.
- Custom 2D dataset ``data_2d_custom_NAME.npz`` (its ``prepare_data_2d_custom.py``): ``positions_2d`` =
  ``{video: {'custom': [(T, 17, 2) float32]}}`` and ``metadata`` with the COCO layout and each video's size.
- The ``--viz-export`` ``.npy`` lives in :mod:`wildpose.formats.result` (no pickle involved).

Both ``.npz`` files hold pickled object arrays; reading goes through
:func:`wildpose.formats.safe_pickle.safe_load_npz`, which never calls anything named in the file.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import FormatError, NoPersonError
from ..types import People2D
from .safe_pickle import safe_load_npz, write_npz

log = logging.getLogger(__name__)

__all__ = ["read_detectron_npz", "write_detectron_npz", "read_custom_dataset", "write_custom_dataset",
           "fill_single_track", "COCO_SYMMETRY"]

# COCO-17 left and right keypoints, as the reference's metadata lists them
COCO_SYMMETRY = [[1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]]


def _item(data: dict, key: str, path) -> Any:
    """The Python object inside a 0-d object array member (what ``.item()`` gives the reference)."""
    if key not in data:
        raise FormatError(f"missing {key!r}", path)
    arr = data[key]
    if arr.shape != () or not arr.dtype.hasobject:
        raise FormatError(f"{key!r} should hold one pickled object, got an array of shape {arr.shape}", path)
    return arr.item()


def _short(value: Any) -> str:
    """A value's repr on one line and cut short, for an error message (arrays print over several lines)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _person_class(entry: Any, what: str, t: int, path) -> Any:
    """Detectron stores per class ``[background, person]``; return the person entry."""
    if isinstance(entry, np.ndarray) and entry.dtype.hasobject:
        entry = list(entry.reshape(-1))
    if isinstance(entry, (list, tuple)) and len(entry) == 0:
        return []
    if not isinstance(entry, (list, tuple, np.ndarray)) or len(entry) < 2:
        raise FormatError(f"{what}[{t}] is not a per-class list [[], people]", path)
    return entry[1]


def _float_array(value: Any, what: str, path) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise FormatError(f"{what} is not numeric ({exc})", path) from None


def read_detectron_npz(path: str | os.PathLike) -> tuple[list[People2D], dict]:
    """Read the reference's per-video detections (``infer_video_d2.py`` output).

    Parameters
    ----------
    path
        ``<video>.npz`` with ``boxes``, ``keypoints`` and ``metadata``.

    Returns
    -------
    people : list of People2D
        One per frame: keypoints (K, 17, 3) float32 with x, y in pixels and the file's keypoint
        probability as score (Detectron2 writes its heatmap score there, which is not bounded to [0, 1]);
        boxes (K, 5) float32 x1, y1, x2, y2 pixels and person score. Frames without boxes or without
        keypoints are empty, as the reference treats them.
    metadata : dict
        The file's metadata with ``'w'`` and ``'h'`` (ints, pixels).

    Raises
    ------
    FormatError
        Missing or malformed members, or a pickle that names anything but plain data.
    """
    data = safe_load_npz(path)
    for key in ("boxes", "keypoints"):
        if key not in data:
            raise FormatError(f"missing {key!r}: not a Detectron detections file", path)
    boxes, keypoints = data["boxes"], data["keypoints"]
    if boxes.ndim == 0 or keypoints.ndim == 0:
        raise FormatError("boxes and keypoints should hold one entry per frame", path)
    if len(boxes) != len(keypoints):
        raise FormatError(f"boxes ({len(boxes)} frames) and keypoints ({len(keypoints)} frames) differ", path)
    metadata = _item(data, "metadata", path)
    if not isinstance(metadata, dict) or "w" not in metadata or "h" not in metadata:
        raise FormatError("metadata should be a dict with 'w' and 'h'", path)
    try:
        metadata = {**metadata, "w": int(metadata["w"]), "h": int(metadata["h"])}
    except (TypeError, ValueError):
        raise FormatError(f"metadata w/h are not integers: {_short(metadata['w'])}, {_short(metadata['h'])}",
                          path) from None

    people: list[People2D] = []
    for t in range(len(boxes)):
        b = _float_array(_person_class(boxes[t], "boxes", t, path), f"boxes[{t}]", path)
        k = _float_array(_person_class(keypoints[t], "keypoints", t, path), f"keypoints[{t}]", path)
        if b.size == 0 or k.size == 0:
            people.append(People2D.empty())
            continue
        if b.ndim != 2 or b.shape[1] != 5:
            raise FormatError(f"boxes[{t}] has shape {b.shape}, expected (K, 5)", path)
        if k.shape != (len(b), 4, 17):
            raise FormatError(f"keypoints[{t}] has shape {k.shape}, expected ({len(b)}, 4, 17)", path)
        xy_prob = k[:, [0, 1, 3], :].transpose(0, 2, 1)  # rows x, y, logit, prob -> (K, 17, [x, y, prob])
        people.append(People2D(np.ascontiguousarray(xy_prob), b))
    return people, metadata


def write_detectron_npz(path: str | os.PathLike, people_per_frame: Sequence[People2D], width: int,
                        height: int) -> None:
    """Write detections in the reference's ``infer_video_d2.py`` layout, atomically.

    Parameters
    ----------
    path
        Output ``.npz``; the reference's ``prepare_data_2d_custom.py`` expects ``<video file name>.npz``.
    people_per_frame
        One :class:`People2D` per frame (keypoints (K, 17, 3) pixels + score, boxes (K, 5)).
    width, height
        Frame size in pixels, stored as ``metadata = {'w', 'h'}``.

    Notes
    -----
    Keypoint rows are x, y, 0 (the logit the reference does not use), score. Frames without people get
    empty lists, which the reference's reader interpolates over. The file holds pickled object arrays
    (the reference loads it with ``allow_pickle=True``); ours contain only lists, arrays and ``None``.
    """
    T = len(people_per_frame)
    boxes = np.empty((T, 2), dtype=object)
    keypoints = np.empty((T, 2), dtype=object)
    segments = np.empty(T, dtype=object)  # None per frame, as the reference writes
    for t, people in enumerate(people_per_frame):
        boxes[t, 0] = []
        keypoints[t, 0] = []
        if len(people) == 0:
            boxes[t, 1] = []
            keypoints[t, 1] = []
            continue
        kp = people.keypoints
        rows = np.stack([kp[..., 0], kp[..., 1], np.zeros_like(kp[..., 0]), kp[..., 2]], axis=1)  # (K, 4, 17)
        boxes[t, 1] = np.ascontiguousarray(people.boxes, np.float32)
        keypoints[t, 1] = np.ascontiguousarray(rows, np.float32)
    metadata = np.empty((), dtype=object)
    metadata[()] = {"w": int(width), "h": int(height)}
    write_npz(path, {"boxes": boxes, "segments": segments, "keypoints": keypoints, "metadata": metadata},
              allow_object=True)


def read_custom_dataset(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read the reference's ``data_2d_custom_NAME.npz``.

    Returns
    -------
    positions : dict
        Video name -> (T, 17, 2) float32 COCO-17 x, y in pixels (the ``'custom'`` action, camera 0).
    metadata : dict
        As stored: ``layout_name``, ``num_joints``, ``keypoints_symmetry``, ``video_metadata`` =
        ``{video: {'w': int, 'h': int}}``.

    Raises
    ------
    FormatError
        Missing members, wrong nesting or shapes, or a pickle that names anything but plain data.
    """
    data = safe_load_npz(path)
    positions_2d = _item(data, "positions_2d", path)
    metadata = _item(data, "metadata", path)
    if not isinstance(positions_2d, dict):
        raise FormatError("positions_2d should be a dict {video: {'custom': [array]}}", path)
    if not isinstance(metadata, dict):
        raise FormatError("metadata should be a dict", path)
    video_metadata = metadata.get("video_metadata", {})
    if not isinstance(video_metadata, dict):
        raise FormatError("metadata['video_metadata'] should be a dict", path)
    positions: dict[str, np.ndarray] = {}
    for name, actions in positions_2d.items():
        if not isinstance(actions, dict) or "custom" not in actions:
            raise FormatError(f"positions_2d[{name!r}] has no 'custom' entry", path)
        cams = actions["custom"]
        if not isinstance(cams, (list, tuple)) or len(cams) == 0:
            raise FormatError(f"positions_2d[{name!r}]['custom'] should be a non-empty list of arrays", path)
        if len(cams) > 1:
            log.warning("%s: video %r has %d cameras; reading camera 0", path, name, len(cams))
        xy = _float_array(cams[0], f"positions_2d[{name!r}]['custom'][0]", path)
        if xy.ndim != 3 or xy.shape[1:] != (17, 2):
            raise FormatError(f"positions_2d[{name!r}]['custom'][0] has shape {xy.shape}, expected (T, 17, 2)",
                              path)
        if name not in video_metadata:
            log.warning("%s: no video_metadata for %r", path, name)
        positions[str(name)] = xy
    return positions, metadata


def write_custom_dataset(path: str | os.PathLike, positions: Mapping[str, np.ndarray],
                         video_metadata: Mapping[str, Mapping[str, int]]) -> None:
    """Write a ``data_2d_custom_NAME.npz`` that the reference's ``run.py -d custom -k NAME`` loads.

    Parameters
    ----------
    path
        Output file (the reference looks for ``data/data_2d_custom_NAME.npz``); written atomically.
    positions
        Video name -> (T, 17, 2) COCO-17 x, y in pixels, one person, no gaps (the reference cannot lift NaN:
        fill gaps first, e.g. with :func:`fill_single_track`). The reference names videos by file name
        with extension (``walk.mp4``), which is what ``--viz-subject`` takes.
    video_metadata
        Video name -> ``{'w': width, 'h': height}`` in pixels, for every name in ``positions``.

    Raises
    ------
    ValueError
        Wrong shapes, non-finite keypoints, or names without metadata.
    """
    if set(positions) != set(video_metadata):
        raise ValueError(f"positions and video_metadata name different videos: "
                         f"{sorted(set(positions) ^ set(video_metadata))}")
    positions_2d: dict[str, dict] = {}
    sizes: dict[str, dict] = {}
    for name, xy in positions.items():
        if not isinstance(name, str):
            raise ValueError(f"video names must be strings, got {name!r}")
        xy = np.ascontiguousarray(xy, dtype=np.float32)
        if xy.ndim != 3 or xy.shape[1:] != (17, 2):
            raise ValueError(f"positions[{name!r}]: expected shape (T, 17, 2), got {xy.shape}")
        if not np.isfinite(xy).all():
            raise ValueError(f"positions[{name!r}]: has NaN/inf; the reference cannot lift gaps, fill them first")
        meta = video_metadata[name]
        w, h = int(meta["w"]), int(meta["h"])
        if w <= 0 or h <= 0:
            raise ValueError(f"video_metadata[{name!r}]: size must be positive, got {w}x{h}")
        positions_2d[name] = {"custom": [xy]}
        sizes[name] = {"w": w, "h": h}
    metadata = {
        "layout_name": "coco",
        "num_joints": 17,
        "keypoints_symmetry": [list(side) for side in COCO_SYMMETRY],
        "video_metadata": sizes,
    }
    pos_arr = np.empty((), dtype=object)
    pos_arr[()] = positions_2d
    meta_arr = np.empty((), dtype=object)
    meta_arr[()] = metadata
    write_npz(path, {"positions_2d": pos_arr, "metadata": meta_arr}, allow_object=True)


def fill_single_track(people_per_frame: Sequence[People2D]) -> np.ndarray:
    """The reference's own 2D preparation: one person per frame, gaps interpolated.

    Per frame the highest-scoring box wins (so the result may jump between people: the reference's
    documented limitation); frames without anyone are filled per coordinate by linear interpolation
    over frame indices, holding the first/last detection at the ends. Confidences are dropped.

    Parameters
    ----------
    people_per_frame
        One :class:`People2D` per frame.

    Returns
    -------
    np.ndarray
        (T, 17, 2) float32, x, y in pixels.

    Raises
    ------
    NoPersonError
        No frame has anyone (nothing to interpolate from).
    """
    T = len(people_per_frame)
    xy = np.full((T, 17, 2), np.nan, dtype=np.float32)
    for t, people in enumerate(people_per_frame):
        if len(people):
            xy[t] = people.keypoints[int(np.argmax(people.scores)), :, :2]
    flat = xy.reshape(T, 34)
    frames = np.arange(T)
    for c in range(flat.shape[1]):
        known = np.isfinite(flat[:, c])
        if not known.any():
            raise NoPersonError(f"no person in any of {T} frames: nothing to interpolate from")
        if not known.all():
            flat[~known, c] = np.interp(frames[~known], frames[known], flat[known, c])
    return xy
