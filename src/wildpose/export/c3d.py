"""C3D, the biomechanics labs' marker file (Vicon, Qualisys, Visual3D, OpenSim, Mokka), written with ezc3d.

One file for the video, one marker per joint and track, named ``t{track_id}_{joint}`` (Human3.6M joint names),
millimetres, at the video's frame rate (a variable-frame-rate video resampled to a uniform grid), frames where a
track is absent written as invalid points (residual -1; readers give NaN or a mask). Axes are the labs' usual
z up: C3D (X, Y, Z) = world (x, -z, y), a rotation of wildpose's y-up world, so nothing is mirrored. The start
time, track ids and axes are recorded in a ``WILDPOSE`` parameter group.

C3D is dense (markers x frames): a long video with many short tracks makes a large file; the rows of
``--format csv`` stay sparse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import FormatError
from ..skeleton import H36M_NAMES
from ..types import Result
from .sampling import frame_times, track_on_times

# world (x, y up, z) -> C3D (X, Y, Z up): +90 degrees about x
WORLD_TO_C3D = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64)


def marker_names(track_ids) -> list[str]:
    return [f"t{int(track_id)}_{joint}" for track_id in track_ids for joint in H36M_NAMES]


def export(result: Result, out_dir: Path, stem: str) -> list[Path]:
    import ezc3d

    if result.poses_world is None:
        raise FormatError("the result has no world coordinates (poses_world) to write as C3D", Path(out_dir) / stem)
    path = Path(out_dir) / f"{stem}.c3d"
    times, own_frames = frame_times(result, result.fps)
    points = np.empty((4, 17 * len(result.track_ids), len(times)), np.float64)
    for p in range(len(result.track_ids)):
        world = track_on_times(result, result.poses_world, p, times, own_frames)  # (K, 17, 3) metres, NaN: absent
        points[:3, 17 * p:17 * (p + 1)] = np.einsum("ij,kmj->imk", WORLD_TO_C3D, world) * 1000.0
    points[3] = 1.0  # ezc3d writes a NaN point as invalid (residual -1)

    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [float(result.fps)]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = tuple(marker_names(result.track_ids))
    # no per-marker DESCRIPTIONS: ezc3d 1.7 writes more than 255 of them in a form it cannot read back
    c3d["data"]["points"] = points
    c3d.add_parameter("POINT", "UNITS", "mm")
    c3d.add_parameter("POINT", "X_SCREEN", "+X")
    c3d.add_parameter("POINT", "Y_SCREEN", "+Z")
    c3d.add_parameter("WILDPOSE", "TRACK_IDS", [int(t) for t in result.track_ids] or [0])
    c3d.add_parameter("WILDPOSE", "START_TIME", [float(times[0]) if len(times) else 0.0])
    c3d.add_parameter("WILDPOSE", "RESAMPLED", [0 if own_frames else 1])
    c3d.add_parameter("WILDPOSE", "AXES", "X=world x, Y=-world z, Z=world y (up)")
    with atomic_path(path) as tmp:
        c3d.write(str(tmp))
    return [path]
