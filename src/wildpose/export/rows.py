"""JSON and CSV: one row per person-frame, for people's own analysis (pandas, R, spreadsheets, the web).

Rows are in frame order (by track id within a frame). Each holds the video's name, the frame index, its time in
seconds, the track id, whether the keypoints were interpolated over a short gap, the 17 COCO keypoints (x, y in
pixels of the displayed frame, score in [0, 1]) and the 17 Human3.6M joints in camera coordinates (metres, x right,
y down, z forward from the camera; absolute, ``Result.poses_3d_camera``) and in world coordinates (metres, y up,
the floor at y = 0; ``Result.poses_world``). Coordinates a result lacks are NaN in CSV and null in JSON.
The columns and the JSON layout are documented in the README and docs/OUTPUTS.md; the JSON's schema ships as
``wildpose/export/rows.schema.json`` (``SCHEMA_PATH``).

Written in chunks of rows, so a long video never builds the whole text in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from ..atomic import atomic_path
from ..skeleton import COCO_NAMES, H36M_NAMES
from ..types import Result

SCHEMA_PATH = Path(__file__).with_name("rows.schema.json")
FORMAT_VERSION = 1
_CHUNK = 4096  # rows formatted at a time

KEYPOINT_COLUMNS = tuple(f"{name}_{field}" for name in COCO_NAMES for field in ("x", "y", "score"))
CAMERA_COLUMNS = tuple(f"camera_{name}_{axis}" for name in H36M_NAMES for axis in "xyz")
WORLD_COLUMNS = tuple(f"world_{name}_{axis}" for name in H36M_NAMES for axis in "xyz")
CSV_COLUMNS = ("video", "frame", "time", "track_id", "interpolated") + KEYPOINT_COLUMNS + CAMERA_COLUMNS + WORLD_COLUMNS
# the dtypes pandas should read the CSV with (documented in the README)
CSV_DTYPES = {"video": "string", "frame": "int64", "time": "float64", "track_id": "int64", "interpolated": "bool",
              **{c: "float64" for c in KEYPOINT_COLUMNS + CAMERA_COLUMNS + WORLD_COLUMNS}}


def _chunks(result: Result) -> Iterator[tuple[np.ndarray, ...]]:
    """(frame, time, track_id, interpolated, keypoints (n,17,3), camera (n,17,3), world (n,17,3)) per chunk."""
    order, _ = result.by_frame()
    row_ids = result.track_ids[result.row_track()]
    camera = result.poses_3d_camera
    nan = np.full((1, 17, 3), np.nan, np.float32)
    for start in range(0, len(order), _CHUNK):
        rows = order[start:start + _CHUNK]
        frames = result.frame_index[rows]
        yield (frames, np.asarray(result.timestamps, np.float64)[frames], row_ids[rows], result.interpolated[rows],
               result.keypoints_2d[rows],
               camera[rows] if camera is not None else np.broadcast_to(nan, (len(rows), 17, 3)),
               result.poses_world[rows] if result.poses_world is not None else np.broadcast_to(nan, (len(rows), 17, 3)))


def _csv_text(video: str) -> str:
    return '"' + video.replace('"', '""') + '"' if any(c in video for c in ',"\n\r') else video


def export_csv(result: Result, out_dir: Path, stem: str) -> list[Path]:
    """``{stem}.csv``: a header line (``CSV_COLUMNS``), then one line per person-frame."""
    path = Path(out_dir) / f"{stem}.csv"
    # one %-format per line (numpy.savetxt), the video's name a literal: formatting is the cost, so no per-value
    # Python calls
    fmt = ",".join([_csv_text(stem).replace("%", "%%"), "%d", "%.6f", "%d", "%d"]
                   + ["%.2f", "%.2f", "%.4f"] * 17 + ["%.5f"] * 102)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        for frames, times, ids, interpolated, keypoints, camera, world in _chunks(result):
            table = np.concatenate([np.stack([frames, times, ids, interpolated], 1).astype(np.float64),
                                    keypoints.reshape(len(frames), -1), camera.reshape(len(frames), -1),
                                    world.reshape(len(frames), -1)], axis=1)
            np.savetxt(f, table, fmt=fmt)
    return [path]


def _nulls(values: np.ndarray, decimals: int) -> list:
    """Rounded nested lists with NaN as None (JSON has no NaN)."""
    rounded = np.round(values.astype(np.float64), decimals).astype(object)
    rounded[np.isnan(values)] = None
    return rounded.tolist()


def export_json(result: Result, out_dir: Path, stem: str) -> list[Path]:
    """``{stem}.json``: the video's facts and names, then ``rows``, one object per person-frame."""
    path = Path(out_dir) / f"{stem}.json"
    header = {
        "format": "wildpose.rows", "format_version": FORMAT_VERSION, "video": stem, "fps": result.fps,
        "image_size": [int(v) for v in result.image_size], "num_frames": result.num_frames,
        "track_ids": [int(v) for v in result.track_ids],
        "keypoint_names": list(COCO_NAMES), "joint_names": list(H36M_NAMES),
        "units": {"time": "s", "keypoints": "px (x right, y down; score 0-1)",
                  "joints_camera": "m (camera axes: x right, y down, z forward)",
                  "joints_world": "m (world axes: y up, floor at y = 0)"},
    }
    head = ",\n".join(f" {json.dumps(key)}: {json.dumps(value)}" for key, value in header.items())
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("{\n" + head + ',\n "rows": [')
        first = True
        for frames, times, ids, interpolated, keypoints, camera, world in _chunks(result):
            has_camera = ~np.isnan(camera).all(axis=(1, 2))
            has_world = ~np.isnan(world).all(axis=(1, 2))
            kp, cam, wld = _nulls(keypoints, 3), _nulls(camera, 5), _nulls(world, 5)
            for i in range(len(frames)):
                row = {"frame": int(frames[i]), "time": round(float(times[i]), 6), "track_id": int(ids[i]),
                       "interpolated": bool(interpolated[i]), "keypoints": kp[i],
                       "joints_camera": cam[i] if has_camera[i] else None,
                       "joints_world": wld[i] if has_world[i] else None}
                f.write(("\n  " if first else ",\n  ") + json.dumps(row, separators=(",", ":")))
                first = False
        f.write("\n ]\n}\n")
    return [path]
